//! Compiles the bench's XDP programs (generator, sink, XDP_TX reflector)
//! with clang into OUT_DIR, where `bench::bpf` embeds them. `-g` because
//! libbpf-style map definitions need BTF.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const PROGRAMS: &[&str] = &["gen", "sink", "reflect"];
const HEADERS: &[&str] = &["src/bpf/common.h"];

fn main() {
    for header in HEADERS {
        println!("cargo:rerun-if-changed={header}");
    }
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let arch_include = format!("/usr/include/{}-linux-gnu", env::consts::ARCH);
    for program in PROGRAMS {
        let source = format!("src/bpf/{program}.bpf.c");
        println!("cargo:rerun-if-changed={source}");
        let object = out_dir.join(format!("{program}.bpf.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg(format!("-I{arch_include}"))
            .args(["-c", &source, "-o"])
            .arg(&object)
            .status()
            .unwrap_or_else(|e| {
                panic!("running {clang} to build {source}: {e} (scripts/install-deps.sh installs clang)")
            });
        assert!(status.success(), "{clang} failed to compile {source}");
    }
}
