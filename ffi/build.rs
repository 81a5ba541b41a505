//! Publishes the include directory to Rust crates that link this one.
fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("include");
    println!("cargo:include={}", dir.display());
    println!("cargo:rerun-if-changed=build.rs");
}
