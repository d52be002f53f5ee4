//! Writing systems: which script each letter belongs to, and a census of the letters of a text.

/// A writing system, as far as the gate needs to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Script {
    Latin,
    Arabic,
    Devanagari,
    Thai,
    /// Hiragana and Katakana.
    Kana,
    /// CJK ideographs (Chinese characters, Japanese kanji).
    Han,
    Hangul,
    Cyrillic,
    Bengali,
    Tamil,
    Telugu,
    Gujarati,
    Gurmukhi,
    /// Any other script (Greek, Hebrew, Ethiopic, Khmer, Lao, Myanmar, Sinhala, Georgian, …).
    Other,
}

impl Script {
    /// The script of a letter; `None` for what is not a letter (digits, punctuation, emoji,
    /// spaces) and for combining marks, which belong to the letter before them.
    pub fn of(c: char) -> Option<Script> {
        if c.is_ascii() {
            return c.is_ascii_alphabetic().then_some(Script::Latin);
        }
        let cp = c as u32;
        // Combining marks (Latin diacritics written as separate code points, Thai vowel signs,
        // Devanagari matras, …) are not letters of their own.
        if matches!(cp, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F) {
            return None;
        }
        let script = match cp {
            0x00C0..=0x024F
            | 0x1E00..=0x1EFF
            | 0x2C60..=0x2C7F
            | 0xA720..=0xA7FF
            | 0xFF21..=0xFF3A
            | 0xFF41..=0xFF5A => Script::Latin,
            0x0250..=0x02AF | 0x1D00..=0x1DBF => Script::Latin,
            0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
            0x0600..=0x06FF | 0x0750..=0x077F | 0x0870..=0x08FF | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => Script::Arabic,
            0x0900..=0x097F | 0xA8E0..=0xA8FF => Script::Devanagari,
            0x0980..=0x09FF => Script::Bengali,
            0x0A00..=0x0A7F => Script::Gurmukhi,
            0x0A80..=0x0AFF => Script::Gujarati,
            0x0B80..=0x0BFF => Script::Tamil,
            0x0C00..=0x0C7F => Script::Telugu,
            0x0E00..=0x0E7F => Script::Thai,
            0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7AF | 0xD7B0..=0xD7FF => Script::Hangul,
            0x3040..=0x309F | 0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => Script::Kana,
            0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3134F => Script::Han,
            _ => Script::Other,
        };
        // Katakana's prolonged sound mark and the iteration marks are not alphabetic in Unicode
        // but are part of words.
        if c.is_alphabetic() || matches!(cp, 0x30FC | 0x3005 | 0x309D | 0x309E | 0x30FD | 0x30FE) {
            Some(script)
        } else {
            None
        }
    }
}

/// How many letters of each script a text has, and whether it has a word (two or more letters in
/// a row) in a script outside a given set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Census {
    counts: Vec<(Script, usize)>,
    pub(crate) letters: usize,
}

impl Census {
    pub(crate) fn of(text: &str) -> Census {
        let mut census = Census::default();
        for c in text.chars() {
            if let Some(s) = Script::of(c) {
                census.letters += 1;
                match census.counts.iter_mut().find(|(t, _)| *t == s) {
                    Some((_, n)) => *n += 1,
                    None => census.counts.push((s, 1)),
                }
            }
        }
        census
    }

    pub(crate) fn count(&self, script: Script) -> usize {
        self.counts.iter().find(|(s, _)| *s == script).map_or(0, |(_, n)| *n)
    }

    /// The script with the most letters (ties: the first seen).
    pub(crate) fn dominant(&self) -> Option<Script> {
        let mut best: Option<(Script, usize)> = None;
        for &(s, n) in &self.counts {
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((s, n));
            }
        }
        best.map(|(s, _)| s)
    }

    /// The script with the most letters after `first` (ties: the first seen).
    pub(crate) fn second(&self, first: Script) -> Option<Script> {
        let mut best: Option<(Script, usize)> = None;
        for &(s, n) in &self.counts {
            if s != first && best.is_none_or(|(_, m)| n > m) {
                best = Some((s, n));
            }
        }
        best.map(|(s, _)| s)
    }

    /// The share of the letters that are in `script` (0 when there are no letters).
    pub(crate) fn share(&self, script: Script) -> f64 {
        if self.letters == 0 {
            0.0
        } else {
            self.count(script) as f64 / self.letters as f64
        }
    }
}

/// Whether `text` has a run of two or more letters (combining marks and zero-width joiners
/// inside a run allowed) whose script `allowed` refuses: a word in a script none of the supported
/// languages is written in. A lone letter (a Greek µ or α, a ツ in an emoticon) is not a word.
pub(crate) fn has_foreign_word(text: &str, allowed: impl Fn(Script) -> bool) -> bool {
    let mut run = 0usize;
    for c in text.chars() {
        match Script::of(c) {
            Some(s) if !allowed(s) => {
                run += 1;
                if run >= 2 {
                    return true;
                }
            }
            Some(_) => run = 0,
            // Marks and joiners continue a run (Thai/Khmer/Devanagari vowel signs, ZWJ/ZWNJ).
            None if is_mark_or_joiner(c) => {}
            None => run = 0,
        }
    }
    false
}

fn is_mark_or_joiner(c: char) -> bool {
    if matches!(c, '\u{200C}' | '\u{200D}') {
        return true;
    }
    // Not letters and not word separators: combining marks of the Brahmic and South-East Asian
    // scripts (their vowel signs), which `is_alphabetic` may leave out.
    let cp = c as u32;
    !c.is_whitespace()
        && !c.is_ascii()
        && !c.is_alphanumeric()
        && matches!(cp, 0x0300..=0x036F | 0x0900..=0x0DFF | 0x0E00..=0x0FFF | 0x1000..=0x109F | 0x1780..=0x17FF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_by_script() {
        assert_eq!(Script::of('a'), Some(Script::Latin));
        assert_eq!(Script::of('ệ'), Some(Script::Latin));
        assert_eq!(Script::of('ı'), Some(Script::Latin));
        assert_eq!(Script::of('ب'), Some(Script::Arabic));
        assert_eq!(Script::of('क'), Some(Script::Devanagari));
        assert_eq!(Script::of('ก'), Some(Script::Thai));
        assert_eq!(Script::of('の'), Some(Script::Kana));
        assert_eq!(Script::of('ー'), Some(Script::Kana));
        assert_eq!(Script::of('東'), Some(Script::Han));
        assert_eq!(Script::of('한'), Some(Script::Hangul));
        assert_eq!(Script::of('ж'), Some(Script::Cyrillic));
        assert_eq!(Script::of('ሰ'), Some(Script::Other));
        assert_eq!(Script::of('ក'), Some(Script::Other));
        for c in ['1', '٣', ' ', '?', '😀', '#', '\u{0301}', '€'] {
            assert_eq!(Script::of(c), None, "{c:?}");
        }
    }

    #[test]
    fn census_counts_letters_only() {
        let c = Census::of("TCS के इंटरव्यू में 2024 😀");
        assert_eq!(c.count(Script::Latin), 3);
        assert!(c.count(Script::Devanagari) > 3);
        assert_eq!(c.dominant(), Some(Script::Devanagari));
        assert_eq!(c.second(Script::Devanagari), Some(Script::Latin));
        assert_eq!(c.second(Script::Latin), Some(Script::Devanagari));
        assert_eq!(Census::of("12345 !!! 😀😀").letters, 0);
        assert_eq!(Census::of("").dominant(), None);
    }

    #[test]
    fn foreign_words_need_two_letters_in_a_row() {
        let latin_only = |s: Script| s == Script::Latin;
        assert!(has_foreign_word("오늘 maybe pizza", latin_only));
        assert!(has_foreign_word("ሰላም, can you help", latin_only));
        assert!(has_foreign_word("សួស្តី, where", latin_only));
        assert!(!has_foreign_word("a 5 µg dose of vitamin D", latin_only));
        assert!(!has_foreign_word("the α and β versions", latin_only));
        assert!(!has_foreign_word("¯\\_(ツ)_/¯ whatever", latin_only));
        assert!(!has_foreign_word("plain words only", latin_only));
    }
}
