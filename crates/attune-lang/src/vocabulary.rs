//! A short chat line lingua is unsure of, confirmed by its words: how often each of them is
//! written in the supported languages that use Latin script, against the Latin-script decoys.
//!
//! lingua scores letter n-grams, and a line of a dozen common words with a name or a brand in it
//! ("Give me a chord progression for a sad indie song in D minor.": en 0.34, fr 0.19, it 0.10)
//! leaves it spread over languages that share those n-grams. Each word of such a line is either
//! a word people write in English or the language lingua proposes, or it is not; a line whose
//! words nearly all are, with none far more common in a decoy, is that language. The
//! frequencies are wordfreq's "small" lists (`scripts/make_word_frequencies.py`; CC BY-SA 4.0,
//! `data/README.md`): every word written at least once in a million words in one of the eight
//! languages, 180,186 of them.

use std::collections::HashMap;
use std::io::Read;
use std::sync::LazyLock;

use crate::Language;

/// The languages with a column, in the data file's order (its header is checked against it).
const COLUMNS: [Language; 8] = [
    Language::English,
    Language::Spanish,
    Language::Portuguese,
    Language::Indonesian,
    Language::Malay,
    Language::Tagalog,
    Language::Vietnamese,
    Language::Turkish,
];

/// A word counts as written in a language from a Zipf frequency of 3.0 (once in a million
/// words), where wordfreq's small lists stop.
const MIN_ZIPF_10: u8 = 30;
/// A word ten times (one Zipf unit) more common in a decoy than in the candidate and English
/// ("de", "een", "und" in a line lingua reads as English) rules the candidate out.
const DECOY_LEAD_ZIPF_10: u8 = 10;

/// At least this share of a line's words (names aside) is written in the candidate or English.
pub const VOCABULARY_MIN_SHARE: f64 = 0.8;
/// Words a line needs, names aside, for its words to say anything.
pub const VOCABULARY_MIN_WORDS: usize = 4;
/// Words of its own (more common in it than in English) a candidate other than English needs:
/// a line of English words with a Tagalog "na" is English, not Tagalog.
pub const VOCABULARY_OWN_WORDS: usize = 2;
/// No decoy may reach this confidence: a language lingua sees in the line is left to lingua.
pub const VOCABULARY_MAX_DECOY: f64 = 0.3;

const DATA: &[u8] = include_bytes!("../data/word-frequencies.tsv.gz");

/// Zipf frequency × 10 in each of [`COLUMNS`], then the largest among the decoys.
type Frequencies = [u8; COLUMNS.len() + 1];

static TABLE: LazyLock<HashMap<String, Frequencies>> = LazyLock::new(|| parse(DATA));

fn parse(gzipped: &[u8]) -> HashMap<String, Frequencies> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gzipped)
        .read_to_string(&mut text)
        .expect("the word frequencies compiled in are gzip of UTF-8 text (tested)");
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let expected: Vec<&str> = COLUMNS.iter().map(|l| l.code()).chain(["decoys"]).collect();
    assert_eq!(header, format!("word\t{}", expected.join(" ")), "word frequencies' columns (tested)");
    lines
        .filter_map(|line| {
            let (word, values) = line.split_once('\t')?;
            let mut row: Frequencies = [0; COLUMNS.len() + 1];
            for (slot, value) in row.iter_mut().zip(values.split(' ')) {
                *slot = value.parse().ok()?;
            }
            Some((word.to_owned(), row))
        })
        .collect()
}

/// The candidate a line's words confirm among lingua's (`candidates`: language and confidence,
/// in lingua's order): the one whose words, with English's, make the largest share of `words`
/// (the line's words, names left out), if that is at least [`VOCABULARY_MIN_SHARE`], no word is
/// one Zipf unit more common in a decoy, and the candidate (English aside) has
/// [`VOCABULARY_OWN_WORDS`] words of its own.
pub(crate) fn confirmed_language(
    words: &[&str],
    candidates: impl Iterator<Item = (Language, f64)>,
) -> Option<(Language, f64)> {
    let rows: Vec<Option<&Frequencies>> =
        words.iter().filter(|w| w.chars().any(char::is_alphabetic)).map(|w| TABLE.get(*w)).collect();
    if rows.len() < VOCABULARY_MIN_WORDS {
        return None;
    }
    let english = column(Language::English)?;
    let mut best: Option<((Language, f64), usize)> = None;
    for (language, confidence) in candidates {
        let Some(own_column) = column(language) else { continue };
        let supported = |row: &Frequencies| row[own_column].max(row[english]);
        let decoy_leads = |row: &&Frequencies| {
            let decoy = row[COLUMNS.len()];
            decoy >= MIN_ZIPF_10 && decoy >= supported(row).saturating_add(DECOY_LEAD_ZIPF_10)
        };
        if rows.iter().flatten().any(decoy_leads) {
            continue;
        }
        let known = rows.iter().flatten().filter(|row| supported(row) >= MIN_ZIPF_10).count();
        let own = rows
            .iter()
            .flatten()
            .filter(|row| row[own_column] >= MIN_ZIPF_10 && row[own_column] > row[english])
            .count();
        let enough = known as f64 >= VOCABULARY_MIN_SHARE * rows.len() as f64
            && (language == Language::English || own >= VOCABULARY_OWN_WORDS);
        if enough && best.is_none_or(|(_, k)| known > k) {
            best = Some(((language, confidence), known));
        }
    }
    best.map(|(candidate, _)| candidate)
}

fn column(language: Language) -> Option<usize> {
    COLUMNS.iter().position(|&l| l == language)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the gate calls it: the text's words, names left out.
    fn confirmed(text: &str, candidates: &[Language]) -> Option<Language> {
        let words = crate::markers::words(text);
        let common = crate::markers::words_not_names(text, &words);
        confirmed_language(&common, candidates.iter().map(|&l| (l, 0.5))).map(|(l, _)| l)
    }

    #[test]
    fn the_compiled_table_has_its_columns_and_words() {
        assert!(TABLE.len() > 150_000, "{}", TABLE.len());
        let the = TABLE["the"];
        assert!(the[column(Language::English).unwrap()] >= 70, "{the:?}");
        let untuk = TABLE["untuk"];
        assert!(untuk[column(Language::Indonesian).unwrap()] >= 60 && untuk[0] == 0, "{untuk:?}");
        // "voor" is Dutch, written in Indonesian chat too, 40 times less often.
        let voor = TABLE["voor"];
        assert!(voor[COLUMNS.len()] >= 70 && voor[column(Language::Indonesian).unwrap()] < 40, "{voor:?}");
    }

    #[test]
    fn lines_of_common_words_are_confirmed() {
        use Language::*;
        let en = [English, Tagalog];
        // "D" is a name here; "d" alone is mostly French's "d'", which would rule English out.
        assert_eq!(confirmed("Give me a chord progression for a sad indie song in D minor.", &en), Some(English));
        assert_eq!(
            confirmed("Vale a pena o Game Pass se eu só jogo EA FC e Forza?", &[Spanish, Portuguese]),
            Some(Portuguese)
        );
        // Manglish: Malay's own words beside English ones (Malay or Indonesian: the gate's chat words say which).
        let manglish = "Dress untuk wedding dinner kawan, dress code 'garden formal'. Any ideas?";
        assert_eq!(confirmed(manglish, &[Tagalog, English, Indonesian]), Some(Indonesian));
    }

    #[test]
    fn a_decoys_word_or_too_few_known_words_rule_a_line_out() {
        use Language::*;
        // Dutch "het", "voor", "de" are far more common in Dutch than in English.
        assert_eq!(confirmed("is het weer goed voor de camping trip", &[English]), None);
        // Swahili with English: "kesho", "tunaenda", "nataka", "kununua" are in no list.
        assert_eq!(confirmed("kesho tunaenda beach, nataka kununua, what should i pack", &[English]), None);
        // English words and one Tagalog word: not two of Tagalog's own.
        assert_eq!(confirmed("which running shoes are best na for flat feet", &[Tagalog]), None);
        // Too short to say.
        assert_eq!(confirmed("best ramen spots", &[English]), None);
    }
}
