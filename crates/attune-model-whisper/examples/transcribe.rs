//! Transcribe audio files and print, tab-separated: file, language, its probability, mean token
//! log-probability, looped windows, windows decoded / 30 s windows, seconds, text (a developer's
//! tool: attune itself never lets a transcript out of the process).
//!
//!   cargo run --release -p attune-model-whisper --example transcribe -- [--model whisper-base]
//!       [--languages en,id,…] [--prefer id,en] [--force id] FILE...
//!
//! `--languages`: the only languages detection may choose (as the pipeline restricts it to the
//! languages the run can tag); `--prefer`: weighted as the pipeline weighs a user's languages.

use attune_decode_audio::{decode_file, AudioLimits};
use attune_infer::{Device, ModelDir, Runtime, SpeechLanguage, SpeechRequest};
use attune_model_whisper::{Whisper, MULTILINGUAL_MODEL};

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let (mut model, mut language) = (MULTILINGUAL_MODEL.to_string(), SpeechLanguage::Detect { preferred: vec![] });
    let (mut files, mut restrict) = (Vec::new(), None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => model = args.next().expect("--model NAME"),
            "--prefer" => {
                let codes = args.next().expect("--prefer CODES");
                language = SpeechLanguage::Detect { preferred: codes.split(',').map(String::from).collect() };
            }
            "--languages" => restrict = Some(args.next().expect("--languages CODES")),
            "--force" => language = SpeechLanguage::Force(args.next().expect("--force CODE")),
            _ => files.push(a),
        }
    }
    let runtime = Runtime::new(2, Device::Cpu).expect("run `just setup`");
    let mut whisper = Whisper::load(&runtime, &ModelDir::locate(&model, None).expect("model installed")).unwrap();
    if let Some(codes) = restrict {
        whisper.restrict_languages(&codes.split(',').collect::<Vec<_>>());
    }
    for file in files {
        let pcm = match decode_file(std::path::Path::new(&file), &AudioLimits::default()) {
            Ok(pcm) => pcm,
            Err(e) => {
                eprintln!("{file}: {e}");
                continue;
            }
        };
        let t = std::time::Instant::now();
        let request = SpeechRequest::new(&pcm.samples, language.clone());
        match whisper.transcribe_requests(&[request]).pop().unwrap() {
            Ok(tr) => println!(
                "{file}\t{}\t{:.3}\t{:.2}\t{}\t{}/{}\t{:.2}s\tgap {:.3}\t{}",
                tr.language.as_deref().unwrap_or("-"),
                tr.language_probability,
                tr.avg_logprob,
                tr.repetitive_windows,
                tr.decoded_windows,
                tr.windows,
                t.elapsed().as_secs_f64(),
                tr.min_logit_gap,
                tr.text
            ),
            Err(e) => println!("{file}\terror\t{e}"),
        }
    }
}
