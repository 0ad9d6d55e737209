//! A valid component of the wrong world: a `wasi:cli/command` program.
//!
//! The host must refuse to store it as a connector, with a clear error,
//! rather than fail later when it looks for `describe`.

fn main() {
    println!("hi");
}
