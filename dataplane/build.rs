//! Compiles the XDP steering program with clang into OUT_DIR, where
//! `dataplane::steer` embeds it. `-g` because libbpf-style map
//! definitions need BTF.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCES: &[&str] = &["src/steer/steer.bpf.c", "src/steer/maps.h"];

fn main() {
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("steer.bpf.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let arch_include = format!("/usr/include/{}-linux-gnu", env::consts::ARCH);
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg(format!("-I{arch_include}"))
        .args(["-c", SOURCES[0], "-o"])
        .arg(&object)
        .status()
        .unwrap_or_else(|e| {
            panic!("running {clang} to build the XDP program: {e} (scripts/install-deps.sh installs clang)")
        });
    assert!(status.success(), "{clang} failed to compile {}", SOURCES[0]);
}
