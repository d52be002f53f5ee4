//! The HTML run report: written by `run --report-html` and by `attune report` alike, and drawn
//! by a real browser — headless Chromium renders it and the screenshot must show the charts'
//! bars (setup/apt.txt installs `chromium`; `CHROMIUM` names another binary).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("chromium"))
}

/// Pixels within a few levels of `rgb`.
fn pixels_of(png: &Path, rgb: [u8; 3]) -> (usize, usize) {
    let img = image::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display())).to_rgb8();
    let near = |p: &image::Rgb<u8>| p.0.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 6);
    (img.pixels().filter(|p| near(p)).count(), img.pixels().count())
}

#[test]
fn the_html_report_renders_its_charts_in_a_browser() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let html = out.join("report.html");
    let manifest = common::root().join("fixtures/sample/manifest.jsonl");
    let store = out.join("store.sqlite");
    let report = common::run_manifest_with(&manifest, &store, &["--report-html".as_ref(), html.as_os_str()]);
    let json = store.with_extension("report.json");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(&format!("<td>events read</td><td>{}</td>", report["events"])), "the run's own figures");
    assert!(!page.contains("http") && !page.contains("<script"), "self-contained, nothing fetched or run");

    // `attune report` makes the same page from the JSON report.
    let again = out.join("again.html");
    let made = Command::new(env!("CARGO_BIN_EXE_attune"))
        .args(["report".as_ref(), json.as_os_str(), "--html".as_ref(), again.as_os_str()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), page);

    let png = out.join("report.png");
    let shot = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,2600"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap_or_else(|e| panic!("headless Chromium ({}): {e}; `just setup` installs it", chromium().display()));
    assert!(png.exists(), "no screenshot: {}", String::from_utf8_lossy(&shot.stderr));
    // The sample has processed, skipped and failed events: each colour's bars are drawn.
    for (what, rgb, least) in [
        ("processed", [0x2f, 0x6f, 0x9f], 5000),
        ("skipped", [0xc9, 0xa2, 0x27], 500),
        ("failed", [0xb3, 0x40, 0x3a], 200),
    ] {
        let (n, total) = pixels_of(&png, rgb);
        assert!(n >= least, "{what}: {n} of {total} pixels in its colour ({})", png.display());
    }
    eprintln!("screenshot: {}", png.display());
}
