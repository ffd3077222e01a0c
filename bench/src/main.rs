//! `xdplb-bench`, the benchmark harness. Its generator, sink and comparison
//! runs are not built yet; until they are, this binary says so and fails
//! rather than print figures it did not measure.

fn main() -> std::process::ExitCode {
    eprintln!(
        "xdplb-bench: the benchmark harness is not implemented yet \
         (generator, sink and reference forwarders come in their own issue)"
    );
    std::process::ExitCode::from(2)
}
