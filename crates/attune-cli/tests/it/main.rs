//! attune-cli's integration tests, as one test binary: each file below was its own binary, and
//! each of those linked the whole pipeline (a clean `just test` spent minutes linking them) and
//! ran alone, one after another, with a core idle whenever its tests used one. Here the test
//! harness runs tests of every file side by side. `cargo test -p attune-cli --test it voice::`
//! runs one file's tests.

mod common;

mod commands;
mod hostile;
mod images;
mod isolation;
mod kill;
mod languages;
mod lock;
mod margins;
mod parts;
mod report_html;
mod retry;
mod sample;
mod text_in_pictures;
mod video;
mod voice;
