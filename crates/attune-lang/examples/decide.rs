//! Prints the gate's decision and lingua's confidence values for each argument (or each line of
//! standard input): `cargo run -p attune-lang --example decide -- "text" …`.

use attune_lang::LanguageGate;
use std::io::BufRead;

fn main() {
    let gate = LanguageGate::with_defaults();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let texts: Vec<String> =
        if args.is_empty() { std::io::stdin().lock().lines().map_while(Result::ok).collect() } else { args };
    for text in texts {
        let values: Vec<String> = gate
            .confidence_values(&text)
            .into_iter()
            .take(5)
            .filter(|(_, c)| *c > 0.0)
            .map(|(l, c)| format!("{} {c:.3}", l.code()))
            .collect();
        println!("{:?}\n  {:?}\n  lingua: {}", text, gate.decide(&text), values.join(", "));
    }
}
