//! Word lists for what lingua cannot tell: romanised Hindi (Hinglish) and Arabizi, which lingua
//! has no model for and spreads over unrelated Latin-script languages; languages it has no model
//! for that sit close to a supported one (Javanese, Sundanese and other regional languages of
//! Indonesia next to Indonesian and Malay, Cebuano and the other languages of the Philippines next
//! to Tagalog, Galician next to Portuguese and Spanish, Nepali next to Hindi), which it would
//! otherwise pass off as the supported neighbour; Malay against Indonesian, which its models
//! (trained on formal text) confuse in chat, and Hindi against Marathi, Turkish against
//! Azerbaijani; and short chat in a supported language whose words confirm it where lingua is
//! spread.
//!
//! Each list holds frequent function words and chat words of one language that are rare or absent
//! in the others the gate sees; a word that is common in another language (Italian "hai",
//! German "mein", Tagalog "ka", Indonesian "ke") is left out or only counts as weak evidence.
//! The lists were written from general knowledge of the languages and checked against the
//! `*.tuning.jsonl` sets (never the holdout sets) and the gate's own test data.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::Language;

/// The lowercased words of a text: runs of letters, digits and combining marks.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(text, |word, _| out.push(word));
    out
}

/// The words (lowercased, as [`words`] gives them) that the text only writes capitalised and
/// not at the start of a sentence: names ("Ed Sheeran", "Sang-woo", "Han River"), which a word
/// list of function words must not count.
pub(crate) fn proper_names(text: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut common = HashSet::new();
    for_each_word(text, |word, name_like| {
        if name_like {
            names.insert(word);
        } else {
            common.insert(word);
        }
    });
    names.retain(|w| !common.contains(w));
    names
}

/// `words` (the text's [`words`]) less its [`proper_names`]: what a word list or table can speak
/// for, since a name is written alike in every language.
pub(crate) fn words_not_names<'w>(text: &str, words: &'w [String]) -> Vec<&'w str> {
    let names = proper_names(text);
    words.iter().map(String::as_str).filter(|w| !names.contains(*w)).collect()
}

/// Calls `f` with each word of `text`, lowercased, and whether it is written capitalised and
/// does not open a sentence.
fn for_each_word(text: &str, mut f: impl FnMut(String, bool)) {
    let mut current = String::new();
    let mut name_like = false;
    let mut sentence_start = true;
    for c in text.chars() {
        if is_word_char(c) {
            if current.is_empty() {
                name_like = c.is_uppercase() && !sentence_start;
                sentence_start = false;
            }
            current.extend(c.to_lowercase());
        } else {
            if !current.is_empty() {
                f(std::mem::take(&mut current), name_like);
            }
            if matches!(c, '.' | '!' | '?' | '…' | '\n' | '¿' | '¡' | '"' | '“') {
                sentence_start = true;
            }
        }
    }
    if !current.is_empty() {
        f(current, name_like);
    }
}

fn is_word_char(c: char) -> bool {
    if c.is_alphanumeric() {
        return true;
    }
    let cp = c as u32;
    // Combining marks (viramas, vowel signs, nuktas, Latin diacritics as separate code points)
    // and zero-width (non-)joiners; the dandas are punctuation.
    matches!(cp, 0x0300..=0x036F | 0x200C | 0x200D) || (matches!(cp, 0x0900..=0x0DFF) && !matches!(cp, 0x0964 | 0x0965))
}

fn set(words: &'static [&'static str]) -> HashSet<&'static str> {
    words.iter().copied().collect()
}

fn is_latin_word(w: &str) -> bool {
    w.chars().any(|c| c.is_alphabetic()) && w.chars().all(|c| c.is_ascii_alphanumeric() || c.is_alphabetic())
}

/// Words that carry letters (numbers alone are not words for these shares).
fn lettered(words: &[String]) -> impl Iterator<Item = &str> {
    words.iter().map(String::as_str).filter(|w| w.chars().any(|c| c.is_alphabetic()))
}

// ---------------------------------------------------------------------------------------------
// Romanised Hindi

/// Romanised Hindi words that are rare in the other languages the gate sees.
static HINGLISH_STRONG: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "hai", "hain", "hoon", "hun", "tha", "thi", "hoga", "hogi", "honge", "kya", "kyaa", "kyun", "kyon", "kyu",
        "kaise", "kaisa", "kaisi", "kaun", "kaunsa", "kaunsi", "konsa", "konsi", "kitna", "kitne", "kitni", "kahan",
        "kahaan", "kidhar", "mein", "mujhe", "mujhko", "mera", "meri", "humara", "humari", "humare", "hamara",
        "hamari", "hamare", "tumhara", "tumhari", "tumhare", "aap", "aapka", "aapki", "aapke", "apna", "apni", "apne",
        "unka", "unki", "unke", "uska", "uski", "uske", "iska", "iski", "iske", "nahi", "nahin", "nhi", "aur", "bhi",
        "lekin", "kyunki", "isliye", "raha", "rahi", "rahe", "rha", "rhi", "rhe", "karna", "karni", "karne", "karo",
        "karun", "karu", "karein", "karte", "karta", "karti", "kiya", "kiye", "diya", "liya", "liye", "saath",
        "chahiye", "chahta", "chahti", "sakta", "sakti", "sakte", "milega", "milegi", "milta", "milti", "padega",
        "padegi", "padta", "jaata", "jaati", "jaate", "jata", "jati", "jate", "jaun", "jaaun", "gayi", "gaye", "hua",
        "hui", "batao", "bataiye", "bataye", "yaar", "bhai", "bhaiya", "accha", "acha", "achha", "achchha", "theek",
        "thik", "bahut", "bohot", "bahot", "zyada", "jyada", "thoda", "thodi", "abhi", "pehle", "pehli", "baar",
        "kuch", "sabse", "matlab", "bilkul", "sirf", "wahan", "yahan", "hum", "tum", "yeh", "woh", "unhe", "inhe",
        "dekh", "dekhna", "dekhne", "dekho", "lagta", "lagti", "lagega", "ghar", "dost", "paisa", "paise", "shaadi",
        "aaj", "subah", "shaam", "raat", "loon", "banaun", "banau", "jaa", "hoon", "karenge", "chalo", "chalte",
        "batana", "samajh",
    ])
});

/// Common romanised Hindi words that other languages share ("ka" in Tagalog, "se" in Spanish,
/// "ke" in Indonesian, "main" in English): they only add to the share once strong words are seen.
static HINGLISH_WEAK: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "ka", "ki", "ke", "ko", "se", "hi", "ho", "pe", "par", "kal", "main", "mai", "do", "le", "ja", "na", "ek",
        "din", "ye", "wo", "har", "bas", "bina", "koi", "kar", "lun", "ya", "mere", "wala", "wali", "wale", "log",
        "agar", "phir", "fir", "tak", "sab", "dil", "mat", "tab", "toh", "gaya",
    ])
});

// ---------------------------------------------------------------------------------------------
// Arabizi (Arabic in Latin letters, with digits for the sounds Latin lacks)

/// Arabizi words without digits (Egyptian, Levantine, Gulf and Maghrebi chat).
static ARABIZI_STRONG: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "ana",
        "enta",
        "enti",
        "inta",
        "inti",
        "ente",
        "ehna",
        "howa",
        "heya",
        "homma",
        "mesh",
        "msh",
        "mish",
        "mosh",
        "keda",
        "kda",
        "kida",
        "ezay",
        "ezzay",
        "izzay",
        "izay",
        "feen",
        "fein",
        "emta",
        "imta",
        "meen",
        "aywa",
        "walla",
        "wallah",
        "wallahi",
        "yalla",
        "yallah",
        "habibi",
        "habibti",
        "inshallah",
        "mashallah",
        "alhamdulillah",
        "ashan",
        "elly",
        "illi",
        "elli",
        "yaani",
        "keef",
        "kifak",
        "kifik",
        "shu",
        "shou",
        "chnowa",
        "chnouwa",
        "chnou",
        "chkoun",
        "wesh",
        "wach",
        "bghit",
        "brabi",
        "barsha",
        "lazem",
        "lazim",
        "momken",
        "mumkin",
        "momkin",
        "helw",
        "helwa",
        "awi",
        "awy",
        "gedan",
        "khalas",
        "tayeb",
        "tayyeb",
        "kaman",
        "bardo",
        "lessa",
        "lissa",
        "zay",
        "zayy",
        "fel",
        "lel",
        "ma3",
        "la2",
        "mte3",
        "mta3",
        "bta3",
        "kteer",
        "ktir",
        "dayman",
        "nheb",
        "bahebak",
        "baheb",
        "ahlan",
        "yeb2a",
    ])
});

/// Short Arabizi words other languages share (Spanish "el", Italian "fi").
static ARABIZI_WEAK: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&["el", "w", "wa", "ya", "fi", "fil", "lil", "da", "di", "eh", "l", "b", "men", "min", "bas", "abl"])
});

/// Chat shorthand and product names with an Arabizi-looking digit.
static DIGIT_WORD_EXCEPTIONS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&["2day", "2moro", "2morrow", "2nite", "2night", "2gether", "me2", "you2", "u2", "b2b", "b2c", "h2o", "a2z"])
});

/// A word written with an Arabizi digit (2 hamza, 3 ain, 5 kha, 6 ta, 7 ha, 9 sad/qaf): ASCII
/// letters and exactly one digit run of one digit, at least two letters, and not a number with a
/// unit ("5km", "3rd", "7pm") or a model name ("ps5", "a7", "s23", "rtx3060").
fn is_arabizi_digit_word(w: &str) -> bool {
    if !w.chars().all(|c| c.is_ascii_alphanumeric()) || DIGIT_WORD_EXCEPTIONS.contains(w) {
        return false;
    }
    let digits: Vec<(usize, char)> = w.char_indices().filter(|(_, c)| c.is_ascii_digit()).collect();
    let letters = w.chars().filter(|c| c.is_ascii_alphabetic()).count();
    if digits.len() != 1 || letters < 2 || !matches!(digits[0].1, '2' | '3' | '5' | '6' | '7' | '9') {
        return false;
    }
    let at = digits[0].0;
    let (before, after) = (&w[..at], &w[at + 1..]);
    if before.is_empty() {
        // "3ayez", "7abibi", "2awi"; not "5km", "3rd", "7pm", "9gag".
        after.len() >= 3
            && !matches!(
                after,
                "rd" | "nd"
                    | "th"
                    | "st"
                    | "km"
                    | "kg"
                    | "gb"
                    | "mb"
                    | "tb"
                    | "pm"
                    | "am"
                    | "hrs"
                    | "min"
                    | "mins"
                    | "gag"
                    | "dpa"
                    | "mm"
                    | "cm"
                    | "ml"
                    | "ghz"
                    | "mhz"
                    | "mah"
                    | "fps"
                    | "mp"
                    | "kids"
                    | "star"
            )
    } else if after.is_empty() {
        // "mte3", "bta3", "ma3" (listed); not "ps5", "a7", "mp3", "iphone7" (before ≥ 3 and a vowel
        // before the digit is Arabizi's shape: "mte3", "sa7", "wa7").
        before.len() >= 3 && before.ends_with(['a', 'e', 'i', 'o', 'u']) && !before.ends_with("one")
    } else {
        // "a7san", "ma3a", "wa7ed", "yeb2a", "sa3eedi"; not "g7x", "a7iii".
        before.len() + after.len() >= 3 && !after.chars().all(|c| c == 'i')
    }
}

/// Which romanised language a Latin-script text is, if its words say so clearly: at least two
/// strong words (two different ones, or an Arabizi digit word and one more) and strong plus weak
/// words making up at least a quarter of the words. Returns the language and that share.
pub(crate) fn romanised(words: &[String]) -> Option<(RomanisedLanguage, f64)> {
    let lettered: Vec<&str> = lettered(words).filter(|w| is_latin_word(w)).collect();
    let n = lettered.len();
    if n < 3 {
        return None;
    }
    let share = |k: usize| k as f64 / n as f64;

    let mut hi_strong = HashSet::new();
    let (mut hi_strong_n, mut hi_weak_n) = (0, 0);
    let (mut ar_digit, mut ar_strong, mut ar_weak) = (0, 0, 0);
    for &w in &lettered {
        if HINGLISH_STRONG.contains(w) {
            hi_strong.insert(w);
            hi_strong_n += 1;
        } else if HINGLISH_WEAK.contains(w) {
            hi_weak_n += 1;
        }
        if is_arabizi_digit_word(w) {
            ar_digit += 1;
        } else if ARABIZI_STRONG.contains(w) {
            ar_strong += 1;
        } else if ARABIZI_WEAK.contains(w) {
            ar_weak += 1;
        }
    }
    let hindi = (hi_strong.len() >= 2).then(|| share(hi_strong_n + hi_weak_n)).filter(|s| *s >= ROMANISED_MIN_SHARE);
    let arabic = (ar_digit + ar_strong >= 2 && (ar_digit >= 1 || ar_strong >= 3))
        .then(|| share(ar_digit + ar_strong + ar_weak))
        .filter(|s| *s >= ROMANISED_MIN_SHARE);
    match (hindi, arabic) {
        (Some(h), Some(a)) if a > h => Some((RomanisedLanguage::Arabic, a)),
        (Some(h), _) => Some((RomanisedLanguage::Hindi, h)),
        (None, Some(a)) => Some((RomanisedLanguage::Arabic, a)),
        (None, None) => None,
    }
}

/// Whether any word is one of romanised Hindi's or Arabizi's own (a strong word, an Arabizi digit
/// word), though too few to make the text [`romanised`]: the word frequencies (vocabulary.rs)
/// have no column for either, and their lines' English and Tagalog-looking words ("ke", "ka",
/// "ya", "do") would confirm the wrong language.
pub(crate) fn has_romanised_word(words: &[String]) -> bool {
    lettered(words).any(|w| HINGLISH_STRONG.contains(w) || ARABIZI_STRONG.contains(w) || is_arabizi_digit_word(w))
}

/// The least share of a text's words that must be romanised-Hindi (or Arabizi) words.
pub(crate) const ROMANISED_MIN_SHARE: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RomanisedLanguage {
    Hindi,
    Arabic,
}

// ---------------------------------------------------------------------------------------------
// Tagalog

/// Tagalog function and chat words. lingua's Swahili and Yoruba models take 0.1–0.3 of the
/// confidence of many Tagalog lines (their syllables look alike), which fails the supported-share
/// test; these words confirm Tagalog when lingua ranks it first.
static TAGALOG_STRONG: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "ng",
        "mga",
        "ang",
        "yung",
        "ung",
        "po",
        "naman",
        "kasi",
        "ba",
        "ako",
        "ko",
        "mo",
        "niya",
        "siya",
        "kami",
        "tayo",
        "natin",
        "namin",
        "nila",
        "nang",
        "dito",
        "doon",
        "saan",
        "paano",
        "bakit",
        "ano",
        "anong",
        "sino",
        "kailan",
        "magkano",
        "gusto",
        "kong",
        "pwede",
        "puwede",
        "pwedeng",
        "hindi",
        "wala",
        "meron",
        "talaga",
        "din",
        "rin",
        "kung",
        "pag",
        "kapag",
        "yun",
        "iyon",
        "ito",
        "eto",
        "nito",
        "lahat",
        "ngayon",
        "bukas",
        "kahapon",
        "alin",
        "mas",
        "nung",
        "niyo",
        "ninyo",
        "kayo",
        "sana",
        "lalo",
        "dapat",
        "kailangan",
    ])
});

/// Tagalog words other languages share (Spanish "para", English "may", Malay "lang").
static TAGALOG_WEAK: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| set(&["sa", "na", "pa", "ka", "may", "para", "lang", "mag", "si", "ni", "at", "o"]));

/// Whether Tagalog words make up the text: at least two distinct strong words, and strong plus
/// weak words at least a quarter of the words.
pub(crate) fn is_tagalog(words: &[String]) -> bool {
    let m = function_words(words, &TAGALOG_STRONG, &TAGALOG_WEAK);
    m.distinct_strong >= 2 && m.share >= ROMANISED_MIN_SHARE
}

/// Whether Tagalog words hold a Taglish text together: one strong word and at least three
/// Tagalog words in all ("Playlist ng kanta na parang John Mayer at Norah Jones": ng, na, at),
/// a fifth of the words. Only where lingua puts Tagalog and English first and second, the
/// English words (names, brands, "playlist", "budget") being the rest.
pub(crate) fn is_taglish(words: &[String]) -> bool {
    let m = function_words(words, &TAGALOG_STRONG, &TAGALOG_WEAK);
    m.distinct_strong >= 1 && m.hits >= 3 && m.share >= TAGLISH_MIN_SHARE
}

const TAGLISH_MIN_SHARE: f64 = 0.2;

/// How much of a text a language's function words make: distinct strong words, and the share of
/// the lettered words that are strong or weak.
struct FunctionWords {
    distinct_strong: usize,
    /// Strong and weak words, each occurrence counted.
    hits: usize,
    share: f64,
    lettered: usize,
}

fn function_words(words: &[String], strong: &HashSet<&'static str>, weak: &HashSet<&'static str>) -> FunctionWords {
    let lettered: Vec<&str> = lettered(words).collect();
    let distinct_strong = lettered.iter().filter(|w| strong.contains(*w)).collect::<HashSet<_>>().len();
    let hits = lettered.iter().filter(|w| strong.contains(*w) || weak.contains(*w)).count();
    let share = if lettered.is_empty() { 0.0 } else { hits as f64 / lettered.len() as f64 };
    FunctionWords { distinct_strong, hits, share, lettered: lettered.len() }
}

// ---------------------------------------------------------------------------------------------
// English

/// English function and chat words. Informal English with names, brands and jargon ("davinci
/// resolve or premiere for a beginner making travel vlogs?") leaves lingua unsure: English
/// leads at 0.6–0.7 with the rest spread over German, Dutch and French, which fails the
/// supported-share test; these words confirm English when lingua ranks it first.
static ENGLISH_STRONG: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "the", "and", "for", "with", "what", "which", "how", "who", "why", "where", "when", "my", "your", "you", "i",
        "i'm", "im", "it's", "this", "that", "should", "would", "could", "can", "does", "don't", "not", "or", "but",
        "been", "have", "has", "any", "some", "want", "need", "get", "if", "than", "about", "like", "just", "really",
        "much", "many", "there", "they", "we", "our", "be", "will", "from", "at", "are", "it", "so", "good", "best",
        "pls", "please", "vs", "too", "worth", "over", "into", "it", "its", "without",
    ])
});

/// English words other languages share (Dutch "is", "of"; German "was"; Spanish "me"; Polish
/// "to"; Romance "a", "in", "do").
static ENGLISH_WEAK: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| set(&["a", "an", "in", "on", "to", "is", "of", "was", "me", "do", "no", "up", "all"]));

/// Whether English words make up the text: at least two distinct strong words (one in a line of
/// at most 8 words: "How do black holes form?"), and strong plus weak words at least a quarter of
/// the words.
pub(crate) fn is_english(words: &[String]) -> bool {
    let m = function_words(words, &ENGLISH_STRONG, &ENGLISH_WEAK);
    m.distinct_strong >= strong_words_needed(m.lettered) && m.share >= ROMANISED_MIN_SHARE
}

/// Distinct strong words a confirmation takes: one in a line of at most 8 words, two otherwise.
fn strong_words_needed(lettered: usize) -> usize {
    if lettered <= 8 {
        1
    } else {
        2
    }
}

static NO_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(HashSet::new);

/// Whether `own`'s words confirm the text ([`strong_words_needed`] distinct ones) and not one of
/// `other`'s, its neighbour's, is in it.
fn own_not_other(words: &[String], own: &HashSet<&'static str>, other: &HashSet<&'static str>) -> bool {
    let m = function_words(words, own, &NO_WORDS);
    m.distinct_strong >= strong_words_needed(m.lettered) && !words.iter().any(|w| other.contains(w.as_str()))
}

// ---------------------------------------------------------------------------------------------
// Spanish, Portuguese and Vietnamese in short chat

/// Spanish words that Catalan, Italian, Portuguese and Galician write otherwise (Catalan "i",
/// "els", "però", "molt"; Italian "e", "gli", "molto"; Portuguese "os", "muito", "não").
static SPANISH_STRONG: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "y", "los", "muy", "pero", "qué", "cómo", "cuál", "cuáles", "dónde", "cuándo", "cuánto", "cuánta", "estoy",
        "tengo", "tiene", "quiero", "puedo", "hay", "mejor", "también", "hacer", "hago", "mis", "tus", "sus", "ella",
        "ellos", "usted", "ahora", "después", "bueno", "así", "unos", "unas", "eso", "esto", "voy", "necesito", "dame",
        "hola", "gracias", "algún", "alguna", "ningún", "donde", "cuanto", "sirve", "busco", "conviene",
    ])
});
/// Spanish words other languages share (Portuguese "para", "de", "que", "algo", "nada"; Italian
/// "con", "la", "del"; Catalan "del", "una").
static SPANISH_WEAK: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "el", "la", "las", "de", "del", "que", "en", "un", "una", "para", "con", "por", "mi", "me", "se", "lo", "le",
        "es", "o", "a", "al", "no", "su", "tu", "algo", "nada", "esta", "este", "vamos", "está", "porque", "como",
        "gente", "nos", "dos", "mas", "aqui",
    ])
});

/// Portuguese words that Spanish, Catalan, Italian and Galician write otherwise (Spanish "no",
/// "muy", "y"; Galician "non", "moito", "unha").
static PORTUGUESE_STRONG: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "não", "você", "vocês", "pra", "pro", "pras", "pros", "uma", "um", "meu", "minha", "meus", "minhas", "tem",
        "têm", "é", "muito", "muita", "isso", "essa", "esse", "também", "quero", "preciso", "das", "ao", "aos", "com",
        "os", "qual", "quais", "fazer", "mais", "ou", "sem", "já", "tá", "vou", "bem", "melhor", "onde", "seu", "sua",
        "ele", "ela", "eles", "tenho", "posso", "pode", "então", "depois", "agora", "né", "vai", "tô", "estou", "num",
        "numa", "dá", "olá", "obrigado", "obrigada", "algum", "alguma", "nenhum", "dicas",
    ])
});
/// Portuguese words other languages share (Spanish "para", "de", "que", "como", "dos"…; Italian
/// "quanto").
static PORTUGUESE_WEAK: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "de", "do", "da", "dos", "que", "no", "na", "nas", "nos", "o", "a", "e", "para", "por", "se", "me", "em", "as",
        "vale", "pena", "como", "mas", "está", "porque", "quanto", "aqui", "gente", "algo", "nada", "esta", "este",
    ])
});

/// Vietnamese typed without its diacritics (as much chat is): words and chat abbreviations rare
/// elsewhere (not Tagalog "ko", Indonesian "di", English "the").
static VIETNAMESE_STRONG: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "khong", "dc", "duoc", "nguoi", "nhung", "nhieu", "muon", "roi", "chua", "cung", "giup", "gium", "ngay",
        "thang", "minh", "voi", "cua", "nen", "biet", "dang", "nhe", "vay", "bao", "nhiu", "ntn", "hok", "hong",
        "trong", "duoi", "tren", "nhu", "nay", "thi", "lam", "tien", "mua", "choi", "ngon", "dep", "gio", "tuoi",
    ])
});
static VIETNAMESE_WEAK: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "co", "ko", "k", "la", "ma", "cho", "di", "ve", "toi", "ban", "em", "anh", "chi", "oi", "gi", "the", "tai",
        "vi", "can", "do", "nha", "hay", "nao", "sao", "xe", "o", "mot", "hai", "ba", "cai", "con", "ra", "vao", "len",
    ])
});

/// Whether Spanish words make up the text (as [`is_tagalog`]), or it asks or exclaims the Spanish
/// way (¿ ¡, which no other language the gate sees uses); by words only with fewer of
/// Portuguese's own words than Spanish's.
pub(crate) fn is_spanish(text: &str, words: &[String]) -> bool {
    let m = function_words(words, &SPANISH_STRONG, &SPANISH_WEAK);
    let portuguese = function_words(words, &PORTUGUESE_STRONG, &PORTUGUESE_WEAK);
    text.contains(['¿', '¡'])
        || (m.distinct_strong >= 2 && m.share >= ROMANISED_MIN_SHARE && portuguese.distinct_strong < m.distinct_strong)
}

/// Whether Portuguese words make up the text (as [`is_tagalog`]), or it has the letters only
/// Portuguese writes among the languages the gate sees (ã, õ; ç, which Catalan, French and
/// Turkish share, only where lingua already leads with Portuguese); with fewer of Spanish's own words.
pub(crate) fn is_portuguese(words: &[String]) -> bool {
    let m = function_words(words, &PORTUGUESE_STRONG, &PORTUGUESE_WEAK);
    let spanish = function_words(words, &SPANISH_STRONG, &SPANISH_WEAK);
    let tilde = words.iter().any(|w| w.contains(['ã', 'õ']));
    let cedilla = words.iter().any(|w| w.contains('ç'));
    let by_letters =
        (tilde && (m.distinct_strong >= 1 || m.share >= ROMANISED_MIN_SHARE)) || (cedilla && m.distinct_strong >= 1);
    (by_letters || (m.distinct_strong >= 2 && m.share >= ROMANISED_MIN_SHARE))
        && spanish.distinct_strong < m.distinct_strong.max(1)
}

/// Whether the text is Vietnamese by its letters (two words with a letter only Vietnamese
/// writes: ơ ư đ, or a vowel with a hook or a tone mark from Unicode's Vietnamese block, Yoruba's
/// ẹ ọ aside) or, typed without them, by its words.
pub(crate) fn is_vietnamese(words: &[String]) -> bool {
    let vietnamese_letter = |c: char| {
        matches!(c, 'ơ' | 'ư' | 'đ' | 'ă')
            || (matches!(c as u32, 0x1EA0..=0x1EF9) && !matches!(c, 'ẹ' | 'ọ' | 'Ẹ' | 'Ọ'))
    };
    let lettered_words = words.iter().filter(|w| w.chars().any(vietnamese_letter)).count();
    let m = function_words(words, &VIETNAMESE_STRONG, &VIETNAMESE_WEAK);
    lettered_words >= 2 || (m.distinct_strong >= 3 && m.share >= VIETNAMESE_MIN_SHARE)
}

/// Unaccented Vietnamese's syllables look like Swahili's, Yoruba's and Tagalog's to lingua, which
/// may rank it anywhere in its top five: it takes three distinct strong words and this share.
const VIETNAMESE_MIN_SHARE: f64 = 0.3;

/// Vietnamese typed without its diacritics (common in chat), told by its syllables: every word
/// of Vietnamese is one syllable of a closed shape — an onset (b, ch, gh, gi, kh, ng, ngh, nh,
/// ph, qu, th, tr…), a vowel group and at most one of eight codas (c, ch, m, n, ng, nh, p, t) —
/// which the polysyllabic words of the other languages the gate sees seldom have ("untuk",
/// "naman", "for", "with", "mga"). No word with a letter outside ASCII; of the words of letters
/// alone (numbers and "7h", "TH12" aside), at least [`UNACCENTED_VIETNAMESE_MIN_WORDS`], with
/// [`UNACCENTED_VIETNAMESE_MIN_SHARE`] of them such syllables and Vietnamese chat words among
/// them (one strong, three in all).
pub(crate) fn is_unaccented_vietnamese(words: &[String]) -> bool {
    // The chat words first: they rule out most text at the cost of a lookup per word.
    let m = function_words(words, &VIETNAMESE_STRONG, &VIETNAMESE_WEAK);
    if m.distinct_strong < 1 || m.hits < 3 || lettered(words).any(|w| !w.is_ascii()) {
        return false;
    }
    // Words of letters alone: "7h", "TH12", "5kWp" are not syllables, nor counted.
    let alphabetic: Vec<&str> = lettered(words).filter(|w| w.chars().all(|c| c.is_ascii_alphabetic())).collect();
    let syllables = alphabetic.iter().filter(|w| is_vietnamese_syllable(w)).count();
    alphabetic.len() >= UNACCENTED_VIETNAMESE_MIN_WORDS
        && syllables as f64 >= UNACCENTED_VIETNAMESE_MIN_SHARE * alphabetic.len() as f64
}

pub(crate) const UNACCENTED_VIETNAMESE_MIN_WORDS: usize = 4;
pub(crate) const UNACCENTED_VIETNAMESE_MIN_SHARE: f64 = 0.8;

/// Onsets, longest first.
const VIETNAMESE_ONSETS: [&str; 26] = [
    "ngh", "ng", "nh", "ch", "gh", "gi", "kh", "ph", "qu", "th", "tr", "b", "c", "d", "g", "h", "k", "l", "m", "n",
    "p", "r", "s", "t", "v", "x",
];

/// Rhymes without diacritics: vowel groups with the codas each takes, and those that take none.
static VIETNAMESE_RHYMES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let with_codas: [(&str, &[&str]); 17] = [
        ("a", &["c", "ch", "m", "n", "ng", "nh", "p", "t"]),
        ("e", &["c", "ch", "m", "n", "ng", "nh", "p", "t"]),
        ("i", &["ch", "m", "n", "nh", "p", "t"]),
        ("o", &["c", "m", "n", "ng", "p", "t"]),
        ("u", &["c", "m", "n", "ng", "p", "t"]),
        ("y", &[]),
        ("oa", &["c", "ch", "m", "n", "ng", "nh", "p", "t"]),
        ("oe", &["n", "t"]),
        ("uy", &["ch", "n", "nh", "p", "t"]),
        ("ie", &["c", "m", "n", "ng", "p", "t"]),
        ("ye", &["m", "n", "ng", "p", "t"]),
        ("uo", &["c", "m", "n", "ng", "p", "t"]),
        ("ua", &["c", "n", "ng", "t"]),
        ("uye", &["n", "t"]),
        ("oo", &["c", "ng"]),
        ("ue", &["ch", "n", "nh", "t"]),
        ("ia", &[]),
    ];
    let open = [
        "ai", "ao", "au", "ay", "eo", "eu", "iu", "oi", "ui", "uu", "ieu", "yeu", "uoi", "uou", "oai", "oay", "uay",
        "uai", "oeo", "uya", "uyu", "ya",
    ];
    let mut rhymes: HashSet<String> = open.iter().map(|r| r.to_string()).collect();
    for (vowels, codas) in with_codas {
        rhymes.insert(vowels.to_string());
        rhymes.extend(codas.iter().map(|coda| format!("{vowels}{coda}")));
    }
    rhymes
});

/// Whether `word` (lowercase ASCII) has the shape of a Vietnamese syllable without diacritics.
fn is_vietnamese_syllable(word: &str) -> bool {
    VIETNAMESE_RHYMES.contains(word)
        || VIETNAMESE_ONSETS
            .iter()
            .filter_map(|onset| word.strip_prefix(onset))
            .any(|rhyme| VIETNAMESE_RHYMES.contains(rhyme))
}

// ---------------------------------------------------------------------------------------------
// Languages lingua does not model, next to a supported one

/// A language lingua has no model for, which its closest supported neighbour would absorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Unmodelled {
    Javanese,
    Sundanese,
    Balinese,
    Minangkabau,
    Cebuano,
    Ilocano,
    Hiligaynon,
    Waray,
    Bikol,
    Kapampangan,
    Pangasinan,
    /// Acehnese, Madurese, Buginese or Banjarese.
    IndonesianRegional,
    Galician,
    Nepali,
}

impl Unmodelled {
    /// The languages lingua reads as Tagalog.
    const NEXT_TO_TAGALOG: [Unmodelled; 7] = [
        Unmodelled::Cebuano,
        Unmodelled::Ilocano,
        Unmodelled::Hiligaynon,
        Unmodelled::Waray,
        Unmodelled::Bikol,
        Unmodelled::Kapampangan,
        Unmodelled::Pangasinan,
    ];
    /// The languages lingua reads as Malay or Indonesian.
    const NEXT_TO_MALAY_INDONESIAN: [Unmodelled; 5] = [
        Unmodelled::Javanese,
        Unmodelled::Sundanese,
        Unmodelled::Balinese,
        Unmodelled::Minangkabau,
        Unmodelled::IndonesianRegional,
    ];

    /// Galician and Nepali, which lingua reads as Portuguese or Spanish, and as Hindi.
    const OTHERS: [Unmodelled; 2] = [Unmodelled::Galician, Unmodelled::Nepali];

    /// Every unmodelled language: the neighbours' lists and the others, each listed once.
    fn all() -> impl Iterator<Item = Unmodelled> {
        Self::NEXT_TO_MALAY_INDONESIAN.into_iter().chain(Self::NEXT_TO_TAGALOG).chain(Self::OTHERS)
    }

    /// The language's word list.
    fn words(self) -> &'static HashSet<&'static str> {
        match self {
            Unmodelled::Javanese => &JAVANESE,
            Unmodelled::Sundanese => &SUNDANESE,
            Unmodelled::Balinese => &BALINESE,
            Unmodelled::Minangkabau => &MINANGKABAU,
            Unmodelled::Cebuano => &CEBUANO,
            Unmodelled::Ilocano => &ILOCANO,
            Unmodelled::Hiligaynon => &HILIGAYNON,
            Unmodelled::Waray => &WARAY,
            Unmodelled::Bikol => &BIKOL,
            Unmodelled::Kapampangan => &KAPAMPANGAN,
            Unmodelled::Pangasinan => &PANGASINAN,
            Unmodelled::IndonesianRegional => &INDONESIAN_REGIONAL,
            Unmodelled::Galician => &GALICIAN,
            Unmodelled::Nepali => &NEPALI,
        }
    }
}

static JAVANESE: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "ora",
        "opo",
        "piye",
        "kepiye",
        "kowe",
        "arep",
        "wis",
        "durung",
        "sesuk",
        "mengko",
        "bengi",
        "karo",
        "neng",
        "ning",
        "menyang",
        "lunga",
        "iki",
        "kuwi",
        "iku",
        "kae",
        "ngendi",
        "endi",
        "saiki",
        "wingi",
        "dhewe",
        "sampeyan",
        "panjenengan",
        "nuwun",
        "sugeng",
        "ngopo",
        "tenan",
        "kanggo",
        "nggawe",
        "tuku",
        "anyar",
        "akeh",
        "sithik",
        "ngerti",
        "ngono",
        "ngene",
        "mangan",
        "turu",
        "omah",
        "kancaku",
        "bocah",
        "carane",
        "enake",
        "apik",
        "suwe",
        "kabare",
        "esuk",
        "melu",
        "sing",
        "yo",
        "ae",
        "wae",
        "rak",
        "ra",
        "sego",
        "tulung",
        "garap",
        "bumbune",
        "mbok",
        "nopo",
        "ojo",
        "gawe",
        "kowé",
    ])
});

static SUNDANESE: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "abdi",
        "anjeun",
        "teu",
        "henteu",
        "naon",
        "kumaha",
        "bade",
        "badé",
        "hoyong",
        "nuju",
        "tos",
        "atos",
        "sareng",
        "damang",
        "enjing",
        "raos",
        "patepang",
        "pisan",
        "euy",
        "atuh",
        "ieu",
        "kitu",
        "kieu",
        "hatur",
        "nuhun",
        "punten",
        "geulis",
        "kasep",
        "dahar",
        "nginum",
        "indit",
        "lami",
        "wae",
        "nu",
        "eta",
        "bantosan",
        "urang",
        "ngerjakeun",
        "hukumna",
        "lamun",
        "keur",
        "naha",
        "deui",
        "saha",
        "meuli",
        "ulin",
        "sabaraha",
        "iraha",
    ])
});

static CEBUANO: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "unsa",
        "asa",
        "diri",
        "didto",
        "ug",
        "og",
        "dili",
        "naa",
        "kaayo",
        "lami",
        "nindot",
        "kinsa",
        "ngano",
        "nganong",
        "unya",
        "gyud",
        "jud",
        "bitaw",
        "basin",
        "karon",
        "ugma",
        "gabii",
        "mouban",
        "moadto",
        "makapalit",
        "mokaon",
        "mangaon",
        "baybayon",
        "kini",
        "niini",
        "nimo",
        "nako",
        "atong",
        "kanang",
        "mouli",
        "mobalik",
        "bisaya",
        "bisdak",
        "kaau",
        "karong",
        "mi",
        // Added with Ilocano and Hiligaynon: "Unsa may maayo nga cellphone …" passed as Tagalog.
        "maayo",
        "imong",
        "nimong",
        "mopalit",
        "unsaon",
        "ganahan",
        "palihug",
        "kwarta",
        "mahimo",
        "daghan",
        "dghan",
        "gamay",
        "naay",
        "usab",
        "pud",
        "atoa",
        "unsay",
        "lamian",
        "kinahanglan",
        "tabangi",
        "pasabot",
        "tinuod",
        "lisod",
        "kinabuhi",
        "gihapon",
        "kanus-a",
    ])
});

/// Ilocano (northern Luzon), which lingua reads as Tagalog at 0.8–0.9.
static ILOCANO: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "dagiti",
        "ken",
        "iti",
        "kayat",
        "nasayaat",
        "idiay",
        "ditoy",
        "sadino",
        "apay",
        "ania",
        "adda",
        "mangan",
        "gumatang",
        "naimbag",
        "agyamanak",
        "kaano",
        "siak",
        "sika",
        "isuna",
        "datayo",
        "ngem",
        "wenno",
        "unay",
        "daytoy",
        "dayta",
        "agbiahe",
        "mabalin",
        "kasano",
        "tapno",
        "agpayso",
        "ti",
        "naimas",
        "tulongannak",
        "kaipapanan",
        "kadagiti",
        "nalaka",
        "agbirok",
        "manen",
        "nakem",
    ])
});

/// Hiligaynon (Panay, Negros), which lingua reads as Tagalog at 0.9 and more.
static HILIGAYNON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "sang",
        "diin",
        "amo",
        "gid",
        "guid",
        "subong",
        "kag",
        "magbakal",
        "indi",
        "lamun",
        "akon",
        "imo",
        "nagakaon",
        "palangga",
        "ginahimo",
        "bangud",
        "sadto",
        "kaon",
        "bala",
        "ngaa",
        "liwat",
        "himuon",
        "ginahambal",
        "hambal",
        "manamit",
        "lutuon",
        "hilanat",
        "nagdaog",
        "orderon",
        "aton",
        "ginasaulog",
        "utod",
        "karon",
    ])
});

/// Waray (Samar, Leyte), which lingua reads as Tagalog.
static WARAY: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "han",
        "hin",
        "maupay",
        "pira",
        "yana",
        "tikang",
        "upod",
        "kun",
        "ngan",
        "karuyag",
        "gud",
        "gad",
        "amon",
        "iton",
        "didto",
        "waray",
        "tawo",
        "pagturog",
        "kahulogan",
        "mabiyahe",
        "dad-on",
        "iinumon",
        "mahihimo",
        "namon",
        "hira",
        "siyahan",
        "bisan",
    ])
});

/// Central Bikol, which lingua reads as Tagalog.
static BIKOL: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "kan",
        "ngonyan",
        "magayon",
        "marhay",
        "siisay",
        "maaaraman",
        "sakong",
        "saimong",
        "darahon",
        "maduman",
        "poon",
        "makulog",
        "masiram",
        "nakagana",
        "tugang",
        "dae",
        "bako",
        "garo",
        "gayod",
        "digdi",
        "duman",
        "harong",
        "kakanon",
        "sinda",
        // "there is", "to know": Tagalog writes "may", "alam".
        "igwa",
        "aram",
    ])
});

/// Kapampangan (Pampanga), which lingua reads as Tagalog.
static KAPAMPANGAN: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "ing",
        "ning",
        "nanu",
        "nokarin",
        "keng",
        "buri",
        "ngeni",
        "masanting",
        "makananu",
        "munta",
        "deng",
        "magkanu",
        "presyu",
        "bayung",
        "makasaliwa",
        "saupan",
        "mayap",
        "agyang",
        "kabang",
        "ngana",
        "iyang",
        "pamag",
        "kekami",
        "kanu",
    ])
});

/// Pangasinan, which lingua reads as Tagalog.
static PANGASINAN: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "ed",
        "manpaplano",
        "pigara",
        "kaukolan",
        "ira",
        "sikato",
        "agew",
        "aliwa",
        "anggapo",
        "balet",
        "ibaga",
        "antoy",
        "anto",
        "iner",
        "kapigan",
        "mabli",
        "sikayo",
        "sikami",
        "manbakasyon",
    ])
});

/// Acehnese, Madurese, Buginese and Banjarese, which lingua reads as Indonesian or Malay.
static INDONESIAN_REGIONAL: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        // Acehnese
        "meunyo",
        "pane",
        "meulancong",
        "lon",
        "peugot",
        "inggreh",
        "kiban",
        "hukom",
        "seumayang",
        "watee",
        "meunang",
        "baroe",
        "peue",
        "keuhai",
        "nyoe",
        "nyan",
        "geutanyoe",
        "teuh",
        // Madurese
        "dimma",
        "sengko",
        "ongghu",
        "ngakan",
        "arapa",
        "bannya",
        "oreng",
        "nyare",
        "lalakon",
        "bede",
        "tadha",
        "kakeh",
        "eyangghuy",
        // Buginese
        "tulungi",
        "jamai",
        "menangngi",
        "wenni",
        "aga",
        "engka",
        "dena",
        "idi",
        "upasengngi",
        // Banjarese "ulun", "pian", "handak", "banar", "wahini",
    ])
});

/// Balinese, which lingua reads as Malay or Indonesian.
static BALINESE: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "tiang",
        "titiang",
        "meli",
        "dija",
        "kenken",
        "ento",
        "nyen",
        "suba",
        "lakar",
        "nyak",
        "jani",
        "semeton",
        "ngidang",
        "ngujang",
        "iraga",
        "nyanan",
        "kija",
        "uling",
        "anggo",
        "sing",
        "mebelanja",
        "mulih",
        "icang",
        "ngae",
        "seduk",
        "sajan",
        "madaar",
        "ibi",
        "peteng",
        "luu",
        "cang",
        "ragane",
    ])
});

/// Minangkabau (West Sumatra), which lingua reads as Malay or Indonesian.
static MINANGKABAU: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "ambo", "untuak", "ado", "indak", "baa", "mambuek", "lamak", "kama", "bana", "dima", "iko", "ciek", "urang",
        "nan", "kito", "sipatu", "hukumnyo", "puaso", "sadang", "sakik", "manang", "patang",
    ])
});

static GALICIAN: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "xa", "xente", "moito", "moita", "moitos", "moitas", "grazas", "cando", "tamén", "deica", "mellor", "hoxe",
        "mañá", "onte", "nunha", "dunha", "coa", "coas", "facer", "fixen", "fixo", "bo", "bos", "pola", "polas", "ás",
        "á", "ó", "teño", "xeito", "xuntos", "xantar", "cociña", "muller", "igrexa", "polbo", "non", "imos", "vostede",
        "algunha", "ningunha", "tódolos", "ademais",
    ])
});

static NEPALI: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "छ",
        "छन्",
        "छु",
        "छौं",
        "छौ",
        "छैन",
        "छैनन्",
        "हुन्छ",
        "हुन्छन्",
        "भयो",
        "थियो",
        "थिए",
        "हामी",
        "हाम्रो",
        "तपाईं",
        "तपाई",
        "तपाईंको",
        "मलाई",
        "तिमी",
        "तिम्रो",
        "मेरो",
        "उनको",
        "पनि",
        "राम्रो",
        "राम्ररी",
        "धेरै",
        "अहिले",
        "भोलि",
        "हिजो",
        "होइन",
        "कसरी",
        "किन",
        "गर्न",
        "गर्ने",
        "गर्छ",
        "गर्छु",
        "गर्नु",
        "गरेको",
        "लाई",
        "पाइने",
        "पाइन्छ",
        "घुम्न",
        "जाँदैछौं",
        "जान्छु",
        "जान्छौं",
        "ठाउँ",
        "खान",
    ])
});

/// The unmodelled language a text shows, if any: at least two of its words (two different
/// ones) making up at least a fifth of the words. Weak single hits ("sing", "yo", "á") never
/// decide alone.
pub(crate) fn unmodelled(words: &[String]) -> Option<Unmodelled> {
    let lettered: Vec<&str> = lettered(words).collect();
    let n = lettered.len();
    if n == 0 {
        return None;
    }
    let mut best: Option<(Unmodelled, usize)> = None;
    for language in Unmodelled::all() {
        let hits: Vec<&str> = lettered.iter().copied().filter(|w| language.words().contains(w)).collect();
        let distinct: HashSet<&str> = hits.iter().copied().collect();
        if distinct.len() >= 2
            && hits.len() as f64 >= UNMODELLED_MIN_SHARE * n as f64
            && best.is_none_or(|(_, k)| hits.len() > k)
        {
            best = Some((language, hits.len()));
        }
    }
    best.map(|(l, _)| l)
}

/// The least share of a text's words that must be words of an unmodelled language to veto it.
pub(crate) const UNMODELLED_MIN_SHARE: f64 = 0.2;

/// Tagalog's own words, which Cebuano, Hiligaynon, Waray, Bikol and the other languages of the
/// Philippines lingua reads as Tagalog write otherwise: the marker "ng" (theirs: sa, og, sang,
/// han, nin, kan), "hindi" (dili, indi, diri, dai), "ngayon" (karon, subong, yana, ngonyan), the
/// demonstratives and pronouns, the question words. Words they share with Tagalog ("ang", "sa",
/// "na", "mga", "ano", "ako", "ko", "gusto", "kung", "lang", "pwede", "dapat", "siguro", "daw")
/// are not here.
static TAGALOG_OWN: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "ng",
        "nang",
        "yung",
        "ung",
        "iyong",
        "hindi",
        "ngayon",
        "dito",
        "doon",
        "dun",
        "diyan",
        "jan",
        "ito",
        "eto",
        "iyan",
        "yan",
        "iyon",
        "yun",
        "yon",
        "nito",
        "niyan",
        "noon",
        "nung",
        "po",
        "opo",
        "ho",
        "kasi",
        "talaga",
        "naman",
        "natin",
        "tayo",
        "namin",
        "niya",
        "nila",
        "niyo",
        "ninyo",
        "kayo",
        "saan",
        "bakit",
        "sino",
        "kailan",
        "magkano",
        "lahat",
        "meron",
        "mayroon",
        "din",
        "rin",
        "kapag",
        "bukas",
        "kailangan",
        "marami",
        "maganda",
        "masarap",
        "mabuti",
        "pano",
        "ganito",
        "ganyan",
        "baka",
        "muna",
        "pala",
        "lalo",
    ])
});

/// Words of the neighbours' lists that one alone does not give away: the languages' own names,
/// which Tagalog or Indonesian text names them by ("pasalubong para sa lola kong Waray"), and
/// Tagalog words spelled alike (amo "employer", bala "bullet", diin "stress", bako "dent", poon
/// "patron saint", iyang "that").
const NOT_ALONE: [&str; 10] = ["bisaya", "bisdak", "waray", "urang", "amo", "bala", "diin", "bako", "poon", "iyang"];

/// Malay's and Indonesian's own words, which Javanese, Sundanese, Balinese, Minangkabau, Madurese
/// and the other languages of the region lingua reads as Indonesian or Malay write otherwise:
/// "yang" (theirs: sing, nu, nan, ane, se), the negations, "sudah", the pronouns, the question
/// words. Words they share or borrow ("apa", "ada", "bisa", "di", "banget", "bagus", "gak") are
/// not here.
static MALAY_INDONESIAN_OWN: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "yang",
        "tidak",
        "enggak",
        "dengan",
        "untuk",
        "sudah",
        "udah",
        "belum",
        "bagaimana",
        "gimana",
        "ini",
        "saya",
        "kamu",
        "anda",
        "mereka",
        "mau",
        "ingin",
        "sekarang",
        "berapa",
        "kenapa",
        "mengapa",
        "kapan",
        "bila",
        "dan",
        "atau",
        "juga",
        "tapi",
        "tetapi",
        "karena",
        "kerana",
        "sangat",
        "lagi",
        "dari",
        "kalau",
        "kalo",
        "boleh",
        "awak",
        "macam",
        "sahaja",
        "saja",
        "aja",
        "nak",
        "tak",
        "kita",
        "kami",
        "akan",
        "harus",
        "perlu",
        "dalam",
        "pada",
        "seperti",
        "oleh",
        "masih",
        "beli",
        "cari",
        "murah",
        "mahal",
        "sedap",
        "enak",
        "buat",
        "pengen",
        "nggak",
    ])
});

/// The language lingua has no model for that a text it read as Tagalog, Malay or Indonesian
/// shows, if any: one word of that neighbour's list and not one of the supported language's own
/// ([`TAGALOG_OWN`], [`MALAY_INDONESIAN_OWN`]). lingua reads these languages as their neighbour
/// at 0.7–0.95, and their short lines hold too few of their own words for [`unmodelled`]'s
/// share ("Pila bala ang presyo sang bag-o nga Samsung nga cellphone?": sang, bala; "Gutom na
/// ako, ano maupay nga pamahaw?": maupay; "Mon entar ka Sumenep, panggonan se bagus e dimma?":
/// Madurese "dimma"). [`NOT_ALONE`] and the text's [`proper_names`] are not counted. Other
/// languages: `None`.
pub(crate) fn neighbour_not_own(language: Language, text: &str, words: &[String]) -> Option<Unmodelled> {
    let (own, neighbours): (&HashSet<&str>, &[Unmodelled]) = match language {
        Language::Tagalog => (&TAGALOG_OWN, &Unmodelled::NEXT_TO_TAGALOG),
        Language::Malay | Language::Indonesian => (&MALAY_INDONESIAN_OWN, &Unmodelled::NEXT_TO_MALAY_INDONESIAN),
        _ => return None,
    };
    let lettered: Vec<&str> = lettered(words).collect();
    if lettered.iter().any(|w| own.contains(w)) {
        return None;
    }
    let names = proper_names(text);
    let counted: Vec<&str> = lettered.into_iter().filter(|w| !NOT_ALONE.contains(w) && !names.contains(*w)).collect();
    neighbours
        .iter()
        .map(|&neighbour| (neighbour, counted.iter().filter(|w| neighbour.words().contains(*w)).count()))
        .filter(|&(_, hits)| hits > 0)
        .max_by_key(|&(_, hits)| hits)
        .map(|(neighbour, _)| neighbour)
}

// ---------------------------------------------------------------------------------------------
// Malay against Indonesian

static MALAY: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "nak",
        "tak",
        "takde",
        "taknak",
        "kat",
        "macam",
        "camne",
        "sikit",
        "awak",
        "korang",
        "kitorang",
        "diorang",
        "dorang",
        "lepak",
        "je",
        "dah",
        "mahu",
        "hendak",
        "tengok",
        "faham",
        "fikir",
        "wang",
        "kerana",
        "sahaja",
        "cuba",
        "ubat",
        "doktor",
        "telefon",
        "bas",
        "kedai",
        "universiti",
        "polis",
        "kerajaan",
        "sila",
        "kereta",
        "basikal",
        "bilik",
        "pejabat",
        "percuma",
        "sedap",
        "ramai",
        "bila",
        "boleh",
        "betul",
        "ringgit",
        "jom",
        "mcm",
        "apasal",
        "lelaki",
        "arnab",
        "fail",
        "tempahan",
        "seluar",
        "kasut",
        "kahwin",
        "isteri",
        "suami",
    ])
});

static INDONESIAN: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "nggak",
        "ngga",
        "gak",
        "ga",
        "enggak",
        "engga",
        "udah",
        "udh",
        "aja",
        "sih",
        "dong",
        "deh",
        "banget",
        "bgt",
        "gimana",
        "gmn",
        "kayak",
        "kyk",
        "kalo",
        "emang",
        "bikin",
        "bikinin",
        "pengen",
        "pake",
        "gue",
        "gw",
        "lo",
        "lu",
        "elo",
        "mending",
        "doang",
        "bener",
        "beneran",
        "nih",
        "tuh",
        "uang",
        "karena",
        "pikir",
        "paham",
        "coba",
        "obat",
        "dokter",
        "telepon",
        "polisi",
        "universitas",
        "pemerintah",
        "mobil",
        "sepeda",
        "kamar",
        "kantor",
        "gratis",
        "toko",
        "jt",
        "rp",
        "rupiah",
        "nyari",
        "nyobain",
        "ngasih",
        "kapan",
        "biar",
        "gitu",
        "gini",
        "ayo",
        "yuk",
        "cewek",
        "cowok",
        "temen",
        "ngobrol",
        "nonton",
        "pacar",
        "pacarku",
        "sama",
        "mau",
        "mas",
        "mbak",
        "dapet",
        "gede",
        "bisa",
    ])
});

/// Function and chat words Malay and Indonesian share, which the other languages the gate sees
/// do not use (Tagalog, Javanese and Sundanese have their own; Javanese and Sundanese are caught
/// by [`unmodelled`] after).
static MALAY_INDONESIAN: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "yang",
        "untuk",
        "utk",
        "dengan",
        "dgn",
        "tidak",
        "dan",
        "apa",
        "mana",
        "ada",
        "bisa",
        "boleh",
        "buat",
        "sama",
        "lagi",
        "saya",
        "aku",
        "kamu",
        "ini",
        "itu",
        "atau",
        "dari",
        "kalau",
        "sudah",
        "belum",
        "mau",
        "tapi",
        "juga",
        "berapa",
        "bagaimana",
        "kenapa",
        "mengapa",
        "harus",
        "perlu",
        "cara",
        "paling",
        "sangat",
        "dalam",
        "pada",
        "akan",
        "masih",
        "bagus",
        "murah",
        "beli",
        "cari",
        "nya",
        "rekomendasi",
        "tempat",
        "makan",
        "bagi",
    ])
});

/// Whether Malay or Indonesian words make up the text: two distinct words of either (their
/// shared words or each one's own chat words; one in a line of at most 8 words), and with "di",
/// "ke", "ya" at least a quarter of the words.
pub(crate) fn is_malay_or_indonesian(words: &[String]) -> bool {
    let m = function_words(words, &MALAY_INDONESIAN_ALL, &MALAY_INDONESIAN_WEAK);
    m.distinct_strong >= strong_words_needed(m.lettered) && m.share >= ROMANISED_MIN_SHARE
}

/// Every word of either: the shared ones and each one's own chat words.
static MALAY_INDONESIAN_ALL: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| MALAY_INDONESIAN.iter().chain(MALAY.iter()).chain(INDONESIAN.iter()).copied().collect());

static MALAY_INDONESIAN_WEAK: LazyLock<HashSet<&'static str>> = LazyLock::new(|| set(&["di", "ke", "ya"]));

/// Malay or Indonesian, by which side's words are more frequent (None on a tie). Only words
/// one of the two uses and the other does not (or far less) are listed.
pub(crate) fn malay_or_indonesian(words: &[String]) -> Option<MalayOrIndonesian> {
    let (mut ms, mut id) = (0i32, 0i32);
    for w in words {
        let w = w.as_str();
        let rm = w.starts_with("rm") && w.len() > 2 && w[2..].chars().next().is_some_and(|c| c.is_ascii_digit());
        if MALAY.contains(w) || rm {
            ms += 1;
        }
        if INDONESIAN.contains(w) {
            id += 1;
        }
    }
    match ms.cmp(&id) {
        std::cmp::Ordering::Greater => Some(MalayOrIndonesian::Malay),
        std::cmp::Ordering::Less => Some(MalayOrIndonesian::Indonesian),
        std::cmp::Ordering::Equal => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Hindi against Marathi, Turkish against Azerbaijani

/// Hindi words Marathi writes otherwise (Marathi "आहे", "आणि", "नाही", "मध्ये", "पाहिजे", "खूप",
/// "पण" for है, और, नहीं, में, चाहिए, बहुत, लेकिन). lingua's Marathi model takes 0.3–0.67 of
/// Hindi chat with English words in it ("… एक्वेरियम चाहिए? बेटी ने ज़िद पकड़ ली है": mr 0.50).
static HINDI_DEVANAGARI: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "है",
        "हैं",
        "हूँ",
        "हूं",
        "था",
        "थी",
        "थे",
        "में",
        "मैं",
        "नहीं",
        "और",
        "क्या",
        "कैसे",
        "कैसा",
        "कैसी",
        "चाहिए",
        "मुझे",
        "मेरा",
        "मेरी",
        "मेरे",
        "हमें",
        "हमारा",
        "हमारी",
        "आपका",
        "आपकी",
        "आपके",
        "लिए",
        "बताओ",
        "बताइए",
        "बताएं",
        "बताएँ",
        "करूँ",
        "करूं",
        "करें",
        "करना",
        "कितना",
        "कितने",
        "कितनी",
        "कौन",
        "कहाँ",
        "कहां",
        "यह",
        "वह",
        "रहा",
        "रही",
        "रहे",
        "गया",
        "गई",
        "गए",
        "सकता",
        "सकती",
        "सकते",
        "बहुत",
        "लेकिन",
        "भी",
        "से",
        "को",
        "अच्छा",
        "अच्छी",
        "अभी",
        "वाला",
        "वाली",
        "वाले",
        "किसी",
        "कोई",
        "जाए",
        "दो",
        "दें",
    ])
});

/// Marathi words Hindi does not use ("हे", *this*, is Hindi only as a rare vocative).
static MARATHI_DEVANAGARI: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "आहे",
        "आहेत",
        "आहोत",
        "आणि",
        "नाही",
        "नाहीत",
        "मला",
        "मी",
        "आम्ही",
        "तुम्ही",
        "तू",
        "काय",
        "कसा",
        "कसे",
        "कशी",
        "कुठे",
        "मध्ये",
        "पाहिजे",
        "झाले",
        "झाली",
        "झाला",
        "केले",
        "केली",
        "केला",
        "पण",
        "सुद्धा",
        "आता",
        "खूप",
        "माझा",
        "माझी",
        "माझे",
        "तुझा",
        "तुझी",
        "तुमचा",
        "तुमची",
        "तुमचे",
        "आमचा",
        "आमची",
        "त्याचा",
        "त्याची",
        "त्यांना",
        "त्यांनी",
        "हे",
        "ते",
        "कधी",
        "केव्हा",
        "म्हणून",
        "करायचे",
        "करायला",
        "असे",
        "असा",
        "असते",
        "आहेस",
        "होती",
        "शकतो",
        "शकते",
        "सांगा",
        "सांग",
        "कोणता",
        "कोणती",
        "कोणते",
        "किती",
    ])
});

/// Whether a Devanagari text is Hindi rather than Marathi: two distinct Hindi words (one in a
/// line of at most 8 words) and not one Marathi word.
pub(crate) fn is_hindi_not_marathi(words: &[String]) -> bool {
    own_not_other(words, &HINDI_DEVANAGARI, &MARATHI_DEVANAGARI)
}

/// Turkish words Azerbaijani writes otherwise (Azerbaijani "üçün", "deyil", "kimi", "necə",
/// "və", "çox", "qədər", "yox", "hansı" for için, değil, gibi, nasıl, ve, çok, kadar, yok,
/// hangi), with and without Turkish letters as chat types them. lingua's Azerbaijani model takes
/// 0.15–0.53 of short Turkish chat ("20 bin TL'ye kadar kamerası iyi telefon lazım …": az 0.53).
static TURKISH: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "için",
        "icin",
        "değil",
        "degil",
        "gibi",
        "nasıl",
        "nasil",
        "neden",
        "ve",
        "çok",
        "cok",
        "kadar",
        "yok",
        "hangi",
        "nerede",
        "şimdi",
        "simdi",
        "iyi",
        "bana",
        "sana",
        "misin",
        "mısın",
        "musun",
        "müsün",
        "miyim",
        "mıyım",
        "muyum",
        "müyüm",
        "önerir",
        "önerebilir",
        "öneri",
        "öneriniz",
        "tavsiye",
        "istiyorum",
        "yapabilirim",
        "nereden",
        "ediyor",
        "ediyorum",
        "oluyor",
    ])
});

/// Azerbaijani words Turkish does not use, with and without its letters.
static AZERBAIJANI: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set(&[
        "və",
        "üçün",
        "ucun",
        "deyil",
        "necə",
        "nece",
        "çox",
        "cox",
        "qədər",
        "qeder",
        "yox",
        "hansı",
        "hansi",
        "harada",
        "indi",
        "yaxşı",
        "yaxsi",
        "mən",
        "sən",
        "mənə",
        "sənə",
        "edir",
        "edirəm",
        "olar",
        "bizim",
        "sizin",
        "ilə",
        "nə",
        "amma",
        "bəs",
        "həm",
        "hər",
        "gəl",
        "gedirəm",
        "istəyirəm",
        "istəyirem",
        "lazımdır",
    ])
});

/// Whether a Latin text is Turkish rather than Azerbaijani: no ə (Azerbaijani's commonest vowel,
/// absent from Turkish), two distinct Turkish words (one in a line of at most 8 words) and not
/// one Azerbaijani word.
pub(crate) fn is_turkish_not_azerbaijani(text: &str, words: &[String]) -> bool {
    if text.chars().any(|c| matches!(c, 'ə' | 'Ə')) {
        return false;
    }
    own_not_other(words, &TURKISH, &AZERBAIJANI)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MalayOrIndonesian {
    Malay,
    Indonesian,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Vec<String> {
        words(text)
    }

    #[test]
    fn words_keep_marks_and_digits() {
        assert_eq!(w("Kya   haal hai? 3ayez!"), ["kya", "haal", "hai", "3ayez"]);
        assert_eq!(w("काठमाडौंमा राम्रो। ठाउँ"), ["काठमाडौंमा", "राम्रो", "ठाउँ"]);
        assert_eq!(w("छन्"), ["छन्"]);
    }

    #[test]
    fn arabizi_digit_words() {
        for yes in ["3ayez", "7abibi", "ma3a", "a7san", "wa7ed", "yeb2a", "mte3", "bta3", "tabi3y", "sa3eedi", "2awi"] {
            assert!(is_arabizi_digit_word(yes), "{yes}");
        }
        for no in [
            "5km", "3rd", "7pm", "ps5", "a7", "mp3", "s23", "rtx3060", "2day", "iphone7", "g7x", "a7iii", "2024", "4k",
            "b4", "gr8", "covid19", "h2o", "9gag", "5g",
        ] {
            assert!(!is_arabizi_digit_word(no), "{no}");
        }
    }

    #[test]
    fn romanised_hindi_and_arabizi() {
        let hi = |t: &str| romanised(&w(t)).map(|(l, _)| l);
        assert_eq!(hi("yaar kal movie dekhne chalte hain"), Some(RomanisedLanguage::Hindi));
        assert_eq!(
            hi("mujhe ek achha phone chahiye 20k ke andar, camera accha hona chahiye"),
            Some(RomanisedLanguage::Hindi)
        );
        assert_eq!(hi("ana 3ayez a3raf feen a7san koshary fel balad"), Some(RomanisedLanguage::Arabic));
        assert_eq!(hi("yalla ya habibi, el match el naharda 7elw awi"), Some(RomanisedLanguage::Arabic));
        // One strong word is not enough; neither are other languages' look-alikes.
        assert_eq!(hi("hai visto la partita ieri sera?"), None);
        assert_eq!(hi("ich will mein Fahrrad reparieren, kannst du helfen?"), None);
        assert_eq!(hi("main thing is to get the PS5 and a 4k TV for the 3rd room"), None);
        assert_eq!(hi("Mau ke mall sama pacar, ada ide kado?"), None);
        assert_eq!(hi("Ano ang magandang regalo para sa kaibigan ko?"), None);
    }

    #[test]
    fn every_unmodelled_language_is_listed_once() {
        let all: Vec<Unmodelled> = Unmodelled::all().collect();
        let distinct: HashSet<Unmodelled> = all.iter().copied().collect();
        assert_eq!((all.len(), distinct.len()), (14, 14), "{all:?}");
    }

    #[test]
    fn unmodelled_neighbours() {
        let u = |t: &str| unmodelled(&w(t));
        assert_eq!(u("Piye kabare, wis suwe ora ketemu"), Some(Unmodelled::Javanese));
        assert_eq!(u("Kumaha damang? Tos lami teu patepang"), Some(Unmodelled::Sundanese));
        assert_eq!(u("Asa ko makapalit ug barato nga cellphone diri sa Cebu?"), Some(Unmodelled::Cebuano));
        assert_eq!(
            u("Xa temos tenda para ir de acampada ás Cíes, pero non sei se imos poder cear alí"),
            Some(Unmodelled::Galician)
        );
        assert_eq!(u("काठमाडौंमा राम्रो खाना पाइने ठाउँ कहाँ छ?"), Some(Unmodelled::Nepali));
        // One shared word does not veto: English "sing", Spanish "á" in a name, Hindi "किन".
        assert_eq!(u("can you suggest songs to sing at a karaoke night?"), None);
        assert_eq!(u("Mau cari sepatu lari yang enak buat pemula"), None);
        assert_eq!(u("मुझे दिल्ली में अच्छा होटल बताओ"), None);
    }

    #[test]
    fn vietnamese_syllables_have_a_closed_shape() {
        for syllable in ["khong", "nguoi", "duoc", "nghieng", "khuyen", "truong", "quan", "oanh", "a", "yeu", "gi"] {
            assert!(is_vietnamese_syllable(syllable), "{syllable}");
        }
        // Codas Vietnamese lacks (s, r, k, l), onsets it lacks (w, f, z, j), two syllables.
        for word in ["is", "for", "with", "tiktok", "mga", "wa", "fan", "jan", "untuk", "naman", "ing"] {
            assert!(!is_vietnamese_syllable(word), "{word}");
        }
        assert!(is_unaccented_vietnamese(&w("minh muon mua giay chay bo cho nguoi moi tap")));
        // Too few words, or a letter with a diacritic: not this rule's.
        assert!(!is_unaccented_vietnamese(&w("minh muon mua")));
        assert!(!is_unaccented_vietnamese(&w("mình muốn mua giày chạy bộ cho người mới tập")));
    }

    #[test]
    fn proper_names_are_capitalised_words_not_opening_a_sentence() {
        let names = proper_names("Kanta ni Ed Sheeran? Sang-woo ba? Ed, ed English, at Han River");
        let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
        names.sort();
        // "sang" opens a sentence, "ed" is also written in lowercase.
        assert_eq!(names, ["english", "han", "river", "sheeran"]);
    }

    #[test]
    fn malay_and_indonesian_chat_words() {
        let m = |t: &str| malay_or_indonesian(&w(t));
        assert_eq!(m("Nak pergi kedai kejap, korang nak kirim apa-apa tak?"), Some(MalayOrIndonesian::Malay));
        assert_eq!(m("Gue nggak bisa dateng, macet banget nih"), Some(MalayOrIndonesian::Indonesian));
        assert_eq!(m("Laptop bawah RM3k untuk student"), Some(MalayOrIndonesian::Malay));
        assert_eq!(m("saya suka makan"), None);
    }
}
