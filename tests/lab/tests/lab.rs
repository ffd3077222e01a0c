//! The lab checked on its own, without xdplb: the topology routes, the web
//! servers answer, injection and capture see the same bytes, and teardown
//! leaves no namespace and no process behind, also after a panic.
//! Needs root: `cargo test -p xdplb-testlab --test lab -- --test-threads=1`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use testlab::frames::{Endpoints, Malformed};
use testlab::netns::netns_path;
use testlab::{Host, Lab, LabOptions};

fn lab() -> Lab {
    Lab::build(LabOptions::default()).unwrap()
}

#[test]
fn pc_reaches_each_web_server_through_the_router() {
    let lab = lab();
    for web in Host::WEB {
        let r = lab.http_get(Host::Pc, &format!("http://{}/", web.ip())).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, format!("{}\n", web.name()).as_str()));
    }
    // Routed, not bridged: one hop less on the way back.
    let out = lab.exec(Host::Pc, &["ping", "-c", "1", "-W", "5", &Host::Web1.ip().to_string()]);
    assert!(out.unwrap().contains("ttl=63"));
    // Fixed MACs, as the fixtures.
    for host in Host::SEGMENT {
        let link = lab.ip(host, &["link", "show", "dev", "eth0"]).unwrap();
        assert!(link.contains(&testlab::lab::mac_str(host.mac())), "{host:?}: {link}");
    }
}

#[test]
fn web_servers_hold_the_vip_but_never_answer_arp_for_it() {
    let lab = lab();
    for web in Host::WEB {
        assert!(lab.addresses(web, "lo").unwrap().contains(&lab.vip()));
    }
    // Nobody owns the VIP on the segment yet: the router's ARP goes unanswered.
    let vip = lab.vip().to_string();
    assert!(lab.exec(Host::Router, &["ping", "-c", "1", "-W", "1", &vip]).is_err());
    let neigh = lab.ip(Host::Router, &["neigh", "show", &vip]).unwrap();
    assert!(!neigh.contains("lladdr"), "someone answered ARP for the VIP: {neigh}");
}

#[test]
fn health_check_can_be_made_to_fail() {
    let lab = lab();
    let url = format!("http://{}/health_check.html", Host::Web2.ip());
    assert_eq!(lab.http_get(Host::Pc, &url).unwrap().status, 200);
    lab.set_health(Host::Web2, false).unwrap();
    assert_eq!(lab.http_get(Host::Pc, &url).unwrap().status, 500);
    lab.set_health(Host::Web2, true).unwrap();
    assert_eq!(lab.http_get(Host::Pc, &url).unwrap().status, 200);
}

#[test]
fn slow_stream_names_its_server_while_it_runs() {
    let lab = lab();
    let url = format!("http://{}/slow?seconds=1", Host::Web2.ip());
    let stream = lab.http_stream(Host::Pc, &url).unwrap();
    let local = stream.local_addr(Duration::from_secs(10)).unwrap();
    assert_eq!(*local.ip(), Host::Pc.ip());
    assert_eq!(stream.server(Duration::from_secs(10)).unwrap(), "web2");
    let done = stream.join().unwrap();
    assert_eq!((done.status, done.local), (200, local));
    assert_eq!(done.lines.len(), 10);
    assert_eq!(done.servers(), ["web2"]);
    assert!(done.elapsed >= Duration::from_millis(900), "{:?}", done.elapsed);
}

#[test]
fn extra_http_server_runs_anywhere() {
    let lab = lab();
    let _server = lab.start_http_server(Host::Lb1, 8080).unwrap();
    let r = lab.http_get(Host::Pc, &format!("http://{}:8080/", Host::Lb1.ip())).unwrap();
    assert_eq!(r.body, "lb1\n");
    let many = lab.http_get_many(Host::Pc, &format!("http://{}/", Host::Web1.ip()), 20).unwrap();
    assert_eq!(many.failures, Vec::<String>::new());
    assert_eq!(many.by_body().get("web1"), Some(&20));
}

#[test]
fn injected_frames_arrive_byte_for_byte() {
    let lab = lab();
    let to = Endpoints {
        src_mac: Host::Router.mac(),
        dst_mac: Host::Lb1.mac(),
        src_ip: Host::Router.ip(),
        vip: lab.vip(),
        port: 80,
    };
    let frames: Vec<Vec<u8>> = Malformed::ALL.iter().map(|k| k.frame(&to, 7)).collect();
    let filter = format!("ether src {}", testlab::lab::mac_str(Host::Router.mac()));
    let on_lb1 = lab.capture(Host::Lb1, &filter).unwrap();
    let on_port = lab.capture_port(Host::Lb1, &filter).unwrap();
    let sent = lab.inject(Host::Router, "eth0", frames.clone(), Duration::from_millis(1)).unwrap();
    assert_eq!(sent, frames.len());
    let wait = |c: &testlab::Capture| {
        c.wait_for("the injected frames", Duration::from_secs(10), |got| {
            frames.iter().all(|f| got.iter().any(|g| &g.data == f))
        })
        .unwrap()
    };
    wait(&on_lb1);
    wait(&on_port);
    let got = on_lb1.stop().unwrap();
    for f in &frames {
        assert_eq!(got.iter().filter(|g| &g.data == f).count(), 1);
    }
    on_port.stop().unwrap();
}

#[test]
fn dropping_the_lab_removes_namespaces_and_processes() {
    let lab = lab();
    let names: Vec<String> = Host::ALL
        .iter()
        .map(|h| lab.ns(*h).to_owned())
        .chain([lab.segment_ns().to_owned()])
        .collect();
    let dir = lab.dir().to_owned();
    let sleeper = lab.spawn(Host::Web1, &["sleep", "600"]).unwrap();
    let pid = sleeper.pid();
    std::mem::forget(sleeper); // the lab must kill it by itself
    for name in &names {
        assert!(netns_path(name).exists(), "{name}");
    }
    drop(lab);
    for name in &names {
        assert!(!netns_path(name).exists(), "{name} left behind");
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
    // Killed; the forgotten guard cannot reap it, so it is a zombie or gone.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "{pid} still runs: {stat}");
}

#[test]
fn a_panicking_test_still_removes_its_lab() {
    let names = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let dir = std::sync::Arc::new(std::sync::Mutex::new(std::path::PathBuf::new()));
    let (seen, kept) = (names.clone(), dir.clone());
    let result = std::thread::spawn(move || {
        let lab = lab();
        seen.lock().unwrap().extend(Host::ALL.iter().map(|h| lab.ns(*h).to_owned()));
        *kept.lock().unwrap() = lab.dir().to_owned();
        panic!("test failure inside the lab");
    })
    .join();
    assert!(result.is_err());
    let names = names.lock().unwrap();
    assert_eq!(names.len(), Host::ALL.len());
    for name in names.iter() {
        assert!(!netns_path(name).exists(), "{name} left behind");
    }
    // The directory with the logs is kept for whoever debugs the failure.
    let dir = dir.lock().unwrap();
    assert!(dir.join("web1-web80.log").is_file(), "{} not kept", dir.display());
    std::fs::remove_dir_all(&*dir).unwrap();
}
