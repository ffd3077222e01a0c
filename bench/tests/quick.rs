//! A tiny `xdplb-bench compare` of the kernel's XDP_TX and xdplb, end to end:
//! real namespaces, the live-frame generator, the sink, the real xdplb
//! binary. Needs root, and the root package built first (`cargo build`:
//! the xdplb binary is looked for next to this package's binary); fails
//! with a message saying so rather than skip.

use std::path::Path;
use std::process::Command;

#[test]
fn tiny_compare_forwards_frames_through_xdp_tx_and_xdplb() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it builds network namespaces and loads XDP programs \
         (run it as root, e.g. through scripts/test.sh)"
    );
    let bench = Path::new(env!("CARGO_BIN_EXE_xdplb-bench"));
    let xdplb = bench.with_file_name("xdplb");
    assert!(
        xdplb.is_file(),
        "{} is missing: build the root package first (`cargo build` in the workspace; \
         scripts/test.sh does), then rerun this test",
        xdplb.display()
    );
    let json = std::env::temp_dir().join(format!("xdplb-bench-quick-{}.json", std::process::id()));
    let output = Command::new(bench)
        .args(["compare", "--quick", "--runs", "1", "--duration", "0.5", "--flows", "1000"])
        .args(["--only", "xdp_tx,xdplb", "--json"])
        .arg(&json)
        .output()
        .expect("run xdplb-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "xdplb-bench failed:\n{stderr}\n{stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON file was written");
    std::fs::remove_file(&json).expect("remove the JSON file");
    let rows: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let rows = rows.as_array().expect("a JSON array");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["forwarder"].as_str()).collect();
    assert_eq!(
        names,
        ["generator_ceiling", "xdp_tx", "xdplb", "xdplb", "xdplb", "xdplb"],
        "{text}"
    );
    let workers: Vec<u64> = rows.iter().filter_map(|r| r["workers"].as_u64()).collect();
    assert_eq!(workers, [1, 1, 1, 1, 2, 1], "{text}");

    // The 2-worker row says which receive queues were fed, with the
    // per-queue counts and per-worker busy times it is built from.
    let two = &rows[4];
    assert!(two["note"].as_str().is_some_and(|n| n.contains("queue")), "{two}");
    let queues: Vec<u64> = two["dut_rx_queue_frames"]
        .as_array()
        .expect("dut_rx_queue_frames")
        .iter()
        .map(|v| v.as_u64().expect("a count"))
        .collect();
    assert_eq!(queues.len(), 2, "{two}");
    assert!(queues.iter().sum::<u64>() > 0, "{two}");
    assert_eq!(two["worker_busy_seconds"].as_array().map(Vec::len), Some(2), "{two}");
    // One generator (every other row) feeds queue 0 only (a stray frame of
    // the kernel's own may land on queue 1).
    let one = &rows[3]["dut_rx_queue_frames"];
    let (q0, q1) = (one[0].as_u64().unwrap_or(0), one[1].as_u64().unwrap_or(u64::MAX));
    assert!(q0 > 0 && q1 <= q0 / 100, "{one}");

    // The SYN-flood row: TCP SYNs, a new 5-tuple per frame, xdplb's own
    // counts of what it inserted and what the full table turned away.
    let flood = &rows[5];
    assert_eq!(flood["traffic"], "tcp_syn", "{flood}");
    assert_eq!(flood["flows"], 0, "{flood}");
    assert!(flood["variant"].as_str().is_some_and(|v| v.contains("syn_flood")), "{flood}");
    let summary = &flood["syn_flood"];
    let table = summary["flow_table_size"].as_u64().expect("syn_flood.flow_table_size");
    let new_flows = summary["new_flows"].as_array().expect("syn_flood.new_flows");
    let full = summary["flow_table_full"].as_array().expect("syn_flood.flow_table_full");
    assert_eq!(new_flows.len(), full.len());
    for n in new_flows {
        let n = n.as_u64().expect("a count");
        assert!(0 < n && n <= table, "{n} new flows in a table of {table}: {flood}");
    }
    assert_eq!(summary["evicted"], false, "{flood}");
    assert!(flood["note"].is_string(), "{flood}");
    assert!(flood["ratio_to_xdp_tx"].is_null(), "{flood}");

    for row in rows {
        let name = row["forwarder"].as_str().unwrap_or("?");
        let flows = &row["flows"];
        let flood = row["syn_flood"].is_object();
        let pps = row["pps"]["median"].as_f64().expect("pps.median");
        assert!(pps > 0.0, "{name} flows={flows}: no frame came through\n{stderr}");
        let generated = row["generator_pps"]["median"].as_f64().expect("generator_pps.median");
        // Nothing is delivered that was not generated (a little slack for
        // frames of the warm-up still in flight).
        assert!(pps <= generated * 1.05, "{name}: {pps} pps delivered of {generated} generated");
        assert!(row["cpu_ns_per_packet"].as_f64().is_some_and(|ns| ns > 0.0), "{name}: cpu");
        if name == "generator_ceiling" || flood {
            // Neither has a forwarding rate whose half would be a load to
            // measure latency at.
            assert!(row["latency_ns"].is_null(), "{row}");
            continue;
        }
        if row["workers"] == 2 {
            // --quick leaves its latency run out (to stay under a minute).
            assert!(row["latency_ns"].is_null(), "{row}");
            assert!(row["ratio_to_xdp_tx"].as_f64().is_some_and(|r| r > 0.0), "{name}: ratio");
            continue;
        }
        // At half the forwarder's rate (the latency run) most frames come
        // back; on this 2-core box the sink shares its core with the
        // generator, so some loss on the way back is normal (the row's
        // latency_ns.losses says where).
        let latency = &row["latency_ns"];
        let delivered = latency["at_pps"].as_f64().expect("latency_ns.at_pps");
        let offered = latency["offered_pps"].as_f64().expect("latency_ns.offered_pps");
        assert!(
            delivered >= 0.5 * offered && delivered <= 1.05 * offered,
            "{name} flows={flows}: {delivered} of {offered} pps came back at half rate\n{stderr}"
        );
        let (p50, p99) =
            (latency["p50"].as_u64().unwrap_or(0), latency["p99"].as_u64().unwrap_or(0));
        assert!(0 < p50 && p50 <= p99, "{name}: latency p50 {p50} p99 {p99}");
        assert!(latency["samples"].as_u64().is_some_and(|n| n > 100), "{name}: latency samples");
        assert!(row["ratio_to_xdp_tx"].as_f64().is_some_and(|r| r > 0.0), "{name}: ratio");
        assert!(row["ratio_to_testpmd"].is_null() || row["ratio_to_testpmd"].is_number());
    }
    // The table went to stdout, one line per row.
    assert!(stdout.contains("xdp_tx") && stdout.contains("xdplb poll=busy"), "{stdout}");
}
