//! Writing the converted configuration as TOML: tables in the order the
//! config module documents them, keys in a fixed order, each value followed
//! by the keepalived line it came from as a comment.

use std::fmt::Write as _;

/// A TOML value the importer writes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Strs(Vec<String>),
    /// An inline table, `{ key = value, … }`, keys in the order given.
    Inline(Vec<(&'static str, Value)>),
}

/// One `key = value`, with the `FILE:LINE` it came from.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub(super) key: &'static str,
    pub(super) value: Value,
    pub(super) from: Option<String>,
}

/// The keys of one TOML table, at most one entry per key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Table {
    pub(super) entries: Vec<Entry>,
}

impl Table {
    /// Sets `key`, replacing an earlier value; returns where the earlier one came from.
    pub(super) fn set(
        &mut self,
        key: &'static str,
        value: Value,
        from: Option<String>,
    ) -> Option<Option<String>> {
        let entry = Entry { key, value, from };
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(old) => Some(std::mem::replace(old, entry).from),
            None => {
                self.entries.push(entry);
                None
            }
        }
    }

    /// The value of `key`, if set.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// Removes `key`; returns whether it was set.
    pub(super) fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.key != key);
        before != self.entries.len()
    }
}

/// A table with the comment lines written above its header.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Section {
    pub(super) comment: Vec<String>,
    pub(super) table: Table,
}

/// A real server and its checkers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RealServerOut {
    pub(super) section: Section,
    pub(super) http_get: Option<(Section, Vec<Section>)>,
    pub(super) tcp_check: Option<Section>,
}

/// A virtual server and its real servers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ServiceOut {
    pub(super) section: Section,
    pub(super) real_servers: Vec<RealServerOut>,
}

/// Everything that is written, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Output {
    pub(super) header: Vec<String>,
    pub(super) global_defs: Option<Section>,
    pub(super) scripts: Vec<Section>,
    pub(super) instances: Vec<Section>,
    pub(super) services: Vec<ServiceOut>,
    pub(super) dataplane: Option<Section>,
}

/// Key order per table, as the config module's documentation lists them.
const GLOBAL_ORDER: &[&str] = &[
    "router_id",
    "vrrp_version",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_refresh",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_garp_interval",
    "vrrp_higher_prio_send_advert",
];
const SCRIPT_ORDER: &[&str] =
    &["name", "script", "interval", "timeout", "weight", "rise", "fall", "user", "init_fail"];
const VRRP_ORDER: &[&str] = &[
    "name",
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "vrrp_version",
    "advert_int",
    "auth_type",
    "auth_pass",
    "nopreempt",
    "preempt_delay",
    "higher_prio_send_advert",
    "unicast_src_ip",
    "unicast_peer",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "garp_interval",
    "track_interface",
    "track_script",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
    "virtual_ipaddress",
];
const SERVICE_ORDER: &[&str] = &[
    "vip",
    "port",
    "protocol",
    "lvs_sched",
    "lvs_method",
    "delay_loop",
    "persistence_timeout",
    "persistence_granularity",
    "quorum",
    "hysteresis",
    "quorum_up",
    "quorum_down",
    "sorry_server",
    "sorry_server_inhibit",
];
const REAL_SERVER_ORDER: &[&str] = &["ip", "port", "weight", "inhibit_on_failure"];
const CHECK_ORDER: &[&str] =
    &["connect_port", "connect_timeout", "bindto", "retry", "delay_before_retry"];
const URL_ORDER: &[&str] = &["path", "status_code", "digest"];
const DATAPLANE_ORDER: &[&str] = &["interface", "tcp_timeout", "tcpfin_timeout", "udp_timeout"];

/// The TOML text of `out`.
pub(super) fn write(out: &Output) -> String {
    let mut s = String::new();
    for line in &out.header {
        comment(&mut s, line);
    }
    if let Some(g) = &out.global_defs {
        table(&mut s, "[global_defs]", g, GLOBAL_ORDER);
    }
    for script in &out.scripts {
        table(&mut s, "[[vrrp_script]]", script, SCRIPT_ORDER);
    }
    for instance in &out.instances {
        table(&mut s, "[[vrrp_instance]]", instance, VRRP_ORDER);
    }
    for service in &out.services {
        table(&mut s, "[[virtual_server]]", &service.section, SERVICE_ORDER);
        for rs in &service.real_servers {
            table(&mut s, "[[virtual_server.real_server]]", &rs.section, REAL_SERVER_ORDER);
            if let Some((http, urls)) = &rs.http_get {
                table(&mut s, "[virtual_server.real_server.http_get]", http, CHECK_ORDER);
                for url in urls {
                    table(&mut s, "[[virtual_server.real_server.http_get.url]]", url, URL_ORDER);
                }
            }
            if let Some(tcp) = &rs.tcp_check {
                table(&mut s, "[virtual_server.real_server.tcp_check]", tcp, CHECK_ORDER);
            }
        }
    }
    if let Some(d) = &out.dataplane {
        table(&mut s, "[dataplane]", d, DATAPLANE_ORDER);
    }
    s
}

fn comment(s: &mut String, text: &str) {
    // A comment is one line: a newline in a value quoted here must not end it.
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.is_empty() {
        s.push_str("#\n");
    } else {
        let _ = writeln!(s, "# {text}");
    }
}

fn table(s: &mut String, header: &str, section: &Section, order: &[&str]) {
    s.push('\n');
    for line in &section.comment {
        comment(s, line);
    }
    s.push_str(header);
    s.push('\n');
    let mut entries: Vec<&Entry> = section.table.entries.iter().collect();
    entries.sort_by_key(|e| order.iter().position(|k| *k == e.key).unwrap_or(order.len()));
    for entry in entries {
        let line = format!("{} = {}", entry.key, value(&entry.value));
        match &entry.from {
            Some(from) => {
                let pad = 36usize.saturating_sub(line.chars().count()).max(1);
                let from: String =
                    from.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
                let _ = writeln!(s, "{line}{:pad$}# {from}", "");
            }
            None => {
                let _ = writeln!(s, "{line}");
            }
        }
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(text) => string(text),
        Value::Int(n) => n.to_string(),
        Value::Float(x) => float(*x),
        Value::Bool(b) => b.to_string(),
        Value::Strs(list) => {
            let items: Vec<String> = list.iter().map(|t| string(t)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Inline(entries) => {
            let items: Vec<String> =
                entries.iter().map(|(k, v)| format!("{k} = {}", value(v))).collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

/// A float TOML reads back as the same float: always with a `.` or exponent.
fn float(x: f64) -> String {
    if !x.is_finite() {
        // Never produced (values are range-checked); TOML's own spelling if it were.
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let text = format!("{x:?}");
    if text.contains(['.', 'e', 'E']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// A TOML basic string.
pub(super) fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_tables_in_documented_key_order() {
        let mut table = Table::default();
        table.set("virtual_ipaddress", Value::Strs(vec!["10.0.0.1".into()]), None);
        table.set("name", Value::Str("VI_1".into()), Some("k.conf:1".into()));
        table.set("advert_int", Value::Float(1.0), None);
        let earlier = table.set("name", Value::Str("VI_2".into()), Some("k.conf:2".into()));
        assert_eq!(earlier, Some(Some("k.conf:1".into())));
        let out = Output {
            instances: vec![Section { comment: vec!["from k.conf".into()], table }],
            ..Output::default()
        };
        let text = write(&out);
        let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
        let instance = &parsed["vrrp_instance"][0];
        assert_eq!(instance["name"].as_str(), Some("VI_2"));
        assert_eq!(instance["advert_int"].as_float(), Some(1.0));
        let name_at = text.find("name =").expect("name");
        let vip_at = text.find("virtual_ipaddress =").expect("vip");
        assert!(name_at < vip_at, "{text}");
    }

    #[test]
    fn inline_tables_are_one_toml_line() {
        let mut table = Table::default();
        table.set("vip", Value::Str("10.0.0.1".into()), None);
        let sorry = vec![("ip", Value::Str("10.0.0.9".into())), ("port", Value::Int(80))];
        table.set("sorry_server", Value::Inline(sorry), Some("k.conf:3".into()));
        let out = Output {
            services: vec![ServiceOut {
                section: Section { comment: Vec::new(), table },
                real_servers: vec![RealServerOut::default()],
            }],
            ..Output::default()
        };
        let text = write(&out);
        assert!(
            text.contains("sorry_server = { ip = \"10.0.0.9\", port = 80 } # k.conf:3\n"),
            "{text}"
        );
        let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
        let service = &parsed["virtual_server"][0];
        assert_eq!(service["sorry_server"]["ip"].as_str(), Some("10.0.0.9"));
        assert_eq!(service["sorry_server"]["port"].as_integer(), Some(80));
        assert!(service["real_server"].as_array().is_some_and(|a| a.len() == 1));
    }

    proptest! {
        /// Any string and float round-trips through the TOML written for it.
        #[test]
        fn values_round_trip(text in "\\PC*|[\\x00-\\x1f\"\\\\]{0,8}", x in 0.0f64..1e9) {
            let mut table = Table::default();
            table.set("router_id", Value::Str(text.clone()), Some(text.clone()));
            table.set("vrrp_garp_interval", Value::Float(x), None);
            let out = Output {
                header: vec![text.clone()],
                global_defs: Some(Section { comment: vec![text.clone()], table }),
                ..Output::default()
            };
            let written = write(&out);
            let parsed: toml::Table = toml::from_str(&written).expect("valid TOML");
            prop_assert_eq!(parsed["global_defs"]["router_id"].as_str(), Some(text.as_str()));
            prop_assert_eq!(parsed["global_defs"]["vrrp_garp_interval"].as_float(), Some(x));
        }
    }
}
