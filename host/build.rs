//! Links the release `salve` binary with the functions its Lambda init runs placed together.
//!
//! Init runs about 2 MB of code spread over the binary's 36 MB of text, and the kernel maps the
//! page cache around each page fault (64 KiB), so scattered code cost about 16 MiB of resident
//! memory at the first `/invocation/next`. `lambda-init.order` lists those functions (traced by
//! `scripts/lambda-init-order.sh`); lld lays them out first, in one run. A name the binary no
//! longer has is skipped, so a stale list costs memory, never correctness.
//!
//! Only rustc's own linker takes the list: lld, the default for x86_64-unknown-linux-gnu. A
//! configured linker (cargo-lambda's zig, a cross linker) may reject the option, so then nothing
//! is added.

fn main() {
    println!("cargo:rerun-if-changed=lambda-init.order");
    // Cargo cannot rerun on RUSTC_LINKER, which it sets itself; these are where it comes from.
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // A linker chosen in the flags (`-C linker=…`, `-C linker-features=-lld`) may not be lld.
    let default_lld = var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("RUSTC_LINKER").is_empty()
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("linker");
    // Debug builds are never deployed, and their symbol names differ anyway.
    if !default_lld || var("PROFILE") != "release" {
        return;
    }
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("lambda-init.order");
    if !order.exists() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=salve=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bin=salve=-Wl,--no-warn-symbol-ordering");
}
