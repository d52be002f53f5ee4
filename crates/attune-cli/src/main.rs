//! The `attune` command; everything it does lives in the library (`src/lib.rs`), which the
//! Python package (`crates/attune-py`) embeds too.

fn main() -> std::process::ExitCode {
    attune_cli::main()
}
