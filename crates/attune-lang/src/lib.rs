//! The language gate: identifies the language of a text (chat now; speech transcripts and OCR
//! text later) and decides, failing closed, whether it may be tagged.
//!
//! ```no_run
//! use attune_lang::{Language, LanguageDecision, LanguageGate};
//!
//! let gate = LanguageGate::with_defaults(); // the product's 12 languages; build once, share
//! match gate.decide("Rencana naik Rinjani, camp 2 malam di Segara Anak") {
//!     LanguageDecision::Supported { language, .. } => assert_eq!(language, Language::Indonesian),
//!     other => panic!("skip: {other:?}"),
//! }
//! ```
//!
//! Only [`LanguageDecision::Supported`] may be tagged. [`Unsupported`](LanguageDecision::Unsupported)
//! (identified, not in the set) and [`Unidentified`](LanguageDecision::Unidentified) (too short,
//! no letters, not confident, or mixed with an unsupported language or script) are skipped.
//!
//! # How a text is decided
//!
//! Identification is [lingua](https://github.com/pemistahl/lingua-rs) 1.8.0 (n-gram models,
//! Apache-2.0), built with the 12 supported languages **and 22 decoys** ([`Language::ALL`];
//! see *Languages built in* below): lingua only ever answers with a language it was built with,
//! so without decoys Urdu comes out Arabic, Chinese Japanese, Marathi Hindi, Catalan Spanish
//! and Swahili Tagalog. A [`LanguageGate`] is built with every language in the table; its
//! `supported` list only says which of them may be tagged.
//!
//! Each examined window of text (see *Bounded work*) goes through these steps:
//!
//! 1. **Clean and count.** Links, e-mail addresses and @mentions are dropped. Fewer than
//!    3 letters (empty, emoji, digits, punctuation) → `Unidentified { TooShort }`.
//! 2. **Romanised Hindi and Arabizi.** lingua has no model for either and spreads them over
//!    unrelated Latin-script languages (Swahili, Yoruba, Tagalog, English…). A text that is at
//!    least 80 % Latin letters, has at least two distinct romanised-Hindi words (*hai, kya, mein,
//!    kaise, nahi, yaar…*; words other languages share, such as *ka, se, ke*, only count on top)
//!    and at least 25 % such words is Hindi, `romanised: true`; the same with Arabizi words and
//!    digit-words (*3ayez, 7abibi, ma3a, a7san*; not *ps5, 3rd, 5km, 2day*) is Arabic. The
//!    confidence reported is that share of words. The downstream encoder is multilingual and
//!    every supported language's sensitive lexicon runs on every text, so such text is accepted
//!    as its language; [`LanguageGate::accept_romanised`]`(false)` skips it instead
//!    (`Unidentified { Romanised }`). On lingua's 12 600 test sentences of unsupported
//!    languages neither list fired once.
//!
//!    **Vietnamese without its diacritics** ("tiktok cua minh tu nhien bi bop view, co phai bi
//!    khoa tuong tac khong", common in chat) is told by its syllables: at least 4 words of ASCII
//!    letters, ≥ 80 % of them of the closed shape of a Vietnamese syllable (onset, vowel group,
//!    one of eight codas), with Vietnamese chat words among them (one strong, three in all). No
//!    line of another language in any labelled set reaches 70 %, nor any of lingua's test
//!    sentences of the other 33 languages built in, stripped of their diacritics, with the chat
//!    words. Such text is **skipped** as `Unidentified { WithoutDiacritics }`: the text model
//!    reads it poorly. Of the 68 such lines among the 25,643 attune tunes on, the gate admitted
//!    40 before (lingua, or the chat words of step 3, read them as Vietnamese), and on those
//!    `attune eval` gave topic hit 30 % with topic precision 14 % and 7 of 30 ordinary lines
//!    dropped as sensitive (400 lines of the same files with diacritics: 85 %, 58 %, 7 %); the
//!    other 28 lingua read as Swahili, French or spread. Restoring the diacritics (a language
//!    model's job) would let them in.
//!
//!    **Japanese with Latin names.** Text with kana (which only Japanese writes) is Japanese when
//!    kana and kanji make at least half its letters ([`JAPANESE_MIN_SHARE`]) or its Latin words
//!    are all capitalised, the names of bands and products ("Pixel BudsとAirPods Pro、
//!    Android使いならどっち？"): lingua splits a text at spaces and reads such a line by its Latin
//!    words (de 0.33, nl 0.23). Of the 2,113 Japanese tuning lines, 2 were skipped so before.
//! 3. **lingua's confidence values** otherwise. Let *T* be the top language and *share* the
//!    confidence all supported languages hold together.
//!    * **Supported** when *T* is supported and
//!      * *T* has ≥ `min_confidence` (default **0.5**: *T* outweighs all the others together)
//!        and *share* ≥ `min_supported_share` (default **0.8**: at most 0.2 on decoys, so text
//!        mixed with an unsupported language fails); for Devanagari text the share test is
//!        skipped: lingua's only other Devanagari model is Marathi, Hindi chat puts 0.3–0.47 on
//!        it and Marathi chat at most 0.14 on Hindi (tuning sets and test data);
//!      * or *share* ≥ [`MIXTURE_MIN_SUPPORTED_SHARE`] (**0.9**), a mixture of supported
//!        languages whatever *T*'s own confidence ("first motorcycle at 30, Honda Rebel 500 vs
//!        Kawasaki Z400?": en 0.46, tl 0.42);
//!      * or *T* is English, *share* ≥ [`ENGLISH_MIN_SUPPORTED_SHARE`] (0.65) or no single decoy
//!        reaches [`ENGLISH_MAX_DECOY`] (0.2), the text has no letter outside ASCII, and English
//!        function words (*the, for, with, what, my, should, or…*; *a, in, is, of…*, which other
//!        languages share, only count on top) make ≥ 25 % of the words: informal English with
//!        names and jargon ("davinci resolve or premiere for a beginner making travel vlogs?")
//!        puts 0.6–0.7 on English and spreads the rest over German, Dutch and French. This rule
//!        was added after reading the English lines of `fixtures/conversations/holdout.jsonl`
//!        the gate skipped, so the English holdout figures below are no longer a clean holdout
//!        for it (`fixtures/sensitivity/en.holdout.jsonl`, written later, is);
//!      * or *T* has ≥ [`SPREAD_MIN_CONFIDENCE`] (0.55) and no single decoy reaches
//!        [`SPREAD_MAX_DECOY`] (0.12): short chat leaves its remainder spread over several
//!        decoys ("¿Cómo hago pan de masa madre…?": es 0.57, ca 0.11, tl 0.09, pt 0.06), while
//!        a mixture with an unsupported language, or that language itself, puts it on one.
//!        Measured with the `measure` example: skips on the sensitivity calibration lines
//!        44 → 35 of 1,199; lingua's unsupported test sentences leaking 5.74 % → 6.02 %;
//!      * or *T* is Tagalog and Tagalog function words (*ng, mga, ang, yung, ko, ba, naman…*)
//!        make ≥ 25 % of the words: lingua's Swahili and Yoruba models take 0.1–0.3 of many
//!        Tagalog lines, whose syllables look alike;
//!      * or, Taglish, Tagalog and English are lingua's first two (either order), no single
//!        decoy reaches [`SPREAD_MAX_DECOY`], and Tagalog's words (one strong, three in all) make
//!        ≥ 20 % of the words ("Playlist ng kanta na parang John Mayer at Norah Jones, pang-Sunday
//!        morning": tl 0.41, en 0.27): admitted as Tagalog.
//!
//!      * or, when none of these holds and no decoy reaches `min_confidence`, a supported
//!        language among lingua's first [`OWN_WORDS_CANDIDATES`] (5) at
//!        [`OWN_WORDS_MIN_CONFIDENCE`] (0.08) or more is confirmed by its own words or letters
//!        (the first such candidate): Spanish by ¿ ¡ or its function words ("y, los, muy, pero,
//!        qué, tengo…"), Portuguese by its function words ("não, você, pra, uma, com, os…") or
//!        ã õ (ç beside one of them), each only with fewer of the other's own words;
//!        Vietnamese by two words with letters only it writes (ơ ư đ ă and the Vietnamese block,
//!        Yoruba's ẹ ọ aside) or, typed without them, three of its chat words making ≥ 30 % of
//!        the words; Tagalog by its function words. Short chat with brands and English words
//!        ("CarPlay sem fio funciona bem no HB20 2023 ou vale comprar adaptador?": es 0.37,
//!        pt 0.34, ca 0.23) leaves lingua spread, and unaccented Vietnamese reads to it like
//!        Swahili or Yoruba. Written from the training sets' skipped lines
//!        (`fixtures/sensitivity/*.train.jsonl`): skipped 42 → 5 Spanish lines of 1,474,
//!        68 → 17 Portuguese, 65 → 23 Vietnamese, 63 → 44 Tagalog; lingua's test sentences of
//!        the 22 decoys passing 31 of 4,400 before and after, `testdata/` unchanged. Later,
//!        Turkish by words Azerbaijani writes otherwise (below) and Malay or Indonesian by the
//!        words they share or their own (*yang, untuk, dengan, mana, lagi, nak, nggak…*; one in
//!        a line of at most 8 words, two otherwise, ≥ 25 % with *di, ke, ya*).
//!
//!      Malay and Indonesian count as one for the confidence (their models overlap on chat:
//!      Malay lines score 0.2–0.6 Malay with the rest on Indonesian) and are then told apart by
//!      chat words (*nak, tak, kat, macam, boleh, RM…* against *nggak, udah, aja, banget,
//!      gimana…*), lingua's order breaking ties; with only one of the two supported, the other
//!      is Unsupported by the same words. Hindi and Marathi count as one the same way when the
//!      text's Devanagari words are Hindi's (*है, में, नहीं, चाहिए, के लिए…*) and not one is
//!      Marathi's (*आहे, आणि, नाही, मध्ये, पाहिजे…*): lingua's Marathi model takes 0.3–0.67 of
//!      Hindi chat with English words in it. Turkish and Azerbaijani too, when the text has no
//!      ə, Turkish words (*için, değil, gibi, nasıl, kadar, misin…*) and not one of
//!      Azerbaijani's (*üçün, deyil, necə, çox, qədər, hansı…*, with or without its letters):
//!      lingua's Azerbaijani model takes 0.15–0.53 of short Turkish chat.
//!
//!      These last rules (the Turkish and Malay/Indonesian own words, Taglish, the Hindi and
//!      Turkish pairs) were written from the lines the gate skipped among the 25,643 of the
//!      training sets, the calibration split and the tuning sets: skipped 441 → 331 (Hindi
//!      50 → 28, Malay 49 → 16, Indonesian 37 → 14, Tagalog 71 → 47, Turkish 33 → 25), none
//!      newly read as another language; lingua's test sentences of the 22 decoys pass 31 of
//!      4,400 before and after, the same ones per language, `testdata/{unsupported,mixed}`
//!      unchanged.
//!
//!      **Last, the frequencies of all its words** (`vocabulary.rs`), when no decoy reaches
//!      [`VOCABULARY_MAX_DECOY`] (0.3) and no word is one of romanised Hindi's or Arabizi's own:
//!      a candidate as above is confirmed when, names left out (capitalised words not opening a
//!      sentence), at least [`VOCABULARY_MIN_WORDS`] (4) words remain, ≥ 80 % of them are
//!      written at least once in a million words in the candidate or in English (wordfreq's
//!      lists, `data/README.md`), none is ten times more common in a Latin-script decoy
//!      (*de, het, und* in a line read as English), and a candidate other than English has two
//!      words more common in it than in English; the candidate with the most such words wins,
//!      lingua's order breaking ties. lingua leaves plain English with a name or jargon spread
//!      over German, Dutch and French ("Give me a chord progression for a sad indie song in D
//!      minor.": en 0.34, fr 0.19, it 0.10; "snooker vs pool, which is easier to pick up for a
//!      total beginner?"), and Portuguese, Malay and Tagalog with English words and brands
//!      ("Laptop untuk video editing Premiere Pro, budget RM4k?"). The rule was written on a
//!      prototype over the 25,643 lines attune tunes on, `testdata/` and lingua's test
//!      sentences (share 0.8: 0.85 and 0.9 admitted 131 and 114 of the 292 lines it could
//!      change against 0.8's 156, with fewer regional lines, which step 4 catches anyway; two
//!      own words kept Hinglish lines from passing as Tagalog), after reading the holdouts' 24
//!      skipped lines, so the holdouts' gate figures are no longer clean for it. Measured:
//!      the tuning lines skipped 371 → 212 (English 62 → 16, Portuguese 37 → 12, Tagalog
//!      47 → 15, Malay 16 → 2, Spanish 18 → 4), right 25,051 → 25,204, read as another
//!      supported language 221 → 227 (Malay and Indonesian swapped 4, "Boracay or El Nido for
//!      a barkada trip in June?" Tagalog, one Hinglish line Tagalog); `testdata/regional` 0
//!      of 168 and `regional_check` 29 of 150 before and after (one Bikol line newly
//!      caught by two words added to Bikol's list); lingua's test sentences of the 22 decoys
//!      30 → 32 of 4,400, both Spanish sentences in lingua's Catalan file ("Reduce los
//!      niveles del colesterol total."). The table is parsed on first use (~0.1 s, ~17 MiB).
//!    * **Unsupported** when *T* is a decoy with ≥ `min_confidence`.
//!    * **`Unidentified { NotConfident }`** otherwise: the candidates are spread (a short line,
//!      an unknown language, a mixture with an unsupported one).
//! 4. **Checks on a Supported result**, any of which fails it:
//!    * lingua scores only the letters of the script most of the text is in; when a second
//!      script has ≥ 15 % of the letters and ≥ 3 words, those words are scored on their own, and
//!      an unsupported language at ≥ 0.7 makes the text Unsupported (an Urdu passage under an
//!      English header: 26 of lingua's 200 Urdu test sentences passed as English without this);
//!    * a word (two letters or more in a row) in a script none of the supported languages uses
//!      (Hangul, Cyrillic, Ethiopic, Khmer, Bengali…; Han counts as Japanese only beside kana)
//!      → `Unidentified { ForeignScript }`: "오늘 저녁 뭐 먹지? maybe pizza" is not English;
//!    * two distinct words, and ≥ 20 % of the words, from a language lingua has no model for
//!      but that a supported neighbour would absorb: Javanese or Sundanese (→ Indonesian),
//!      Balinese, Minangkabau, Acehnese, Madurese, Buginese or Banjarese (→ Indonesian/Malay),
//!      Cebuano, Hiligaynon, Waray, Bikol, Ilocano, Kapampangan or Pangasinan (→ Tagalog: lingua
//!      gives 0.7–0.95), Galician (→ Portuguese/Spanish), Nepali (→ Hindi) →
//!      `Unidentified { UnmodelledLanguage }`;
//!    * for Tagalog, one word of a Philippine neighbour's list and not one of Tagalog's own
//!      (*ng, yung, hindi, ngayon, dito, ito, po, naman, kasi, natin…*: the words of Tagalog's
//!      that Cebuano, Hiligaynon, Waray and Bikol write otherwise, where *ang, sa, mga, ano, ko,
//!      gusto, kung* are theirs too); for Malay and Indonesian, one word of an Indonesian
//!      neighbour's list and not one of theirs (*yang, tidak, sudah, saya, mau, untuk…*) → the
//!      same. A capitalised word not opening a sentence is a name and does not count
//!      ("Sikat na ba ang Sang-woo sa Pinas?" stays Tagalog), nor do the neighbours' names and
//!      Tagalog homographs (*Bisaya, Waray, amo, bala*). Short lines of these languages hold one
//!      or two of their words among the shared ones, too few for the share above ("Gutom na
//!      ako, ano maupay nga pamahaw?"). Of the 25,643 tuning lines none more is skipped.
//!
//! Mixed text among supported languages (Taglish, Manglish, Indonesian with English words,
//! Hindi with English words) is accepted as its dominant language: the supported share stays
//! high. A mixture with an unsupported language fails the share test, the second-script or
//! script check, or the word lists.
//!
//! The thresholds were chosen on the tuning sets and the unsupported lines (never the holdout
//! sets); `measure -- --min-confidence X --min-supported-share Y` gives, for the tuning sets
//! (right of 960) and lingua's test sentences of unsupported languages (leaked of 12 600):
//!
//! | X | Y | tuning right | leaked | note |
//! |---|---|---|---|---|
//! | 0.5 | 0.7 | 948 | 6.5 % | |
//! | 0.5 | 0.75 | 948 | 6.2 % | |
//! | **0.5** | **0.8** | **947** | **5.7 %** | chosen: the knee |
//! | 0.5 | 0.85 | 940 | 5.4 % | also stops "Kesho tunaenda beach, what should I pack…" |
//! | 0.5 | 0.9 | 923 | 5.0 % | |
//! | 0.4 | 0.8 | 947 | 5.8 % | |
//! | 0.6 | 0.8 | 940 | 5.5 % | |
//!
//! # Languages built in
//!
//! The 12 supported languages' models take 43.9 MB of the binary; all 75 of lingua's, 278 MB
//! and four times the time per line. The 22 decoys take 64.1 MB more:
//!
//! * sharing a script with a supported language, without which their text is forced into it:
//!   Chinese (0.1 MB, Han → Japanese), Persian (5.8) and Urdu (6.1) (→ Arabic), Marathi
//!   (0.7, → Hindi);
//! * Latin script, for languages users in the product's markets plausibly write and their
//!   relatives: Catalan (3.7, → Spanish), Italian (3.8), French (4.4), German (5.8), Dutch (5.5,
//!   also absorbs Afrikaans: without it 4 % of Dutch and Afrikaans test sentences passed),
//!   Polish (6.5), Romanian (5.3, → Spanish/Portuguese: 23 % of its test sentences passed without it),
//!   Azerbaijani (5.4, → Turkish), Swahili (0.7, also takes Zulu),
//!   Somali (1.7), Yoruba (1.1);
//! * scripts of their own, which the script check already keeps out; the small models let the
//!   gate name them (Unsupported rather than Unidentified, for counting demand): Korean (0.04),
//!   Bengali (0.7), Tamil (0.3), Telugu (0.3), Gujarati (0.4), Punjabi (0.2), and Russian (5.5;
//!   Ukrainian, Bulgarian and Kazakh come out as Russian).
//!
//! Not built in (no lingua model): Javanese, Sundanese, Cebuano, Galician and Nepali (word lists,
//! step 4), Amharic, Khmer, Lao, Burmese, Greek, Hebrew… (script check). Cheap decoys for
//! Maori, Sotho, Tswana, Tsonga and Ganda (+4.4 MB) would cut the leak on lingua's test
//! sentences from 5.3 % to 3.3 % but cost 1.4 % of the supported tuning lines, which they pull
//! away from Tagalog and Indonesian (measured with lingua and the step-3 rule alone, without
//! the word lists); those languages are not the product's markets.
//!
//! # Bounded work
//!
//! A text of at most [`WINDOW_CHARS`] characters is examined whole. A longer one is examined in
//! three windows of that size (head, middle, tail, cut at spaces), so the work per text is
//! bounded whatever its length (a 100 kB text costs about as much as three chat lines). Each
//! window is decided as above; the text is Supported only if every window with letters is (as
//! the language most windows have), Unsupported if any window is, and Unidentified otherwise.
//! Long chats and transcripts are overwhelmingly in one language, and a switch to an
//! unsupported one in a sampled window still fails the text; a switch confined to the
//! unsampled stretches does not, and the tagger downstream reads all of the text with every
//! supported language's lexicon.
//!
//! # Figures
//!
//! Produced by `cargo run --release -p attune-lang --example measure -- --lingua-testdata
//! ~/.cargo/registry/src/<index>/` (see that file; the timings are from a shared 2-core machine), on
//! `fixtures/conversations/multilingual/*.jsonl` (tuning sets: used to write the rule and the
//! word lists; holdout sets: measured only) and this crate's `testdata/` (unsupported and mixed
//! lines). "right" = Supported with the labelled language; "wrong" = Supported as another
//! language; "skip" = Unidentified or Unsupported (costs topics).
//!
//! **Labelled sets (fixtures/conversations/multilingual)**
//!
//! | set | lang | lines | right | wrong | skip | romanised right | wrong as | skipped as |
//! |---|---|---|---|---|---|---|---|---|
//! | tuning | en | 80 | 79 (98.8 %) | 0 | 1 |  |  | spread 1 |
//! | tuning | id | 80 | 78 (97.5 %) | 2 | 0 |  | ms 1, tl 1 |  |
//! | tuning | ms | 80 | 77 (96.2 %) | 1 | 2 |  | tl 1 | spread 2 |
//! | tuning | es | 80 | 79 (98.8 %) | 0 | 1 |  |  | spread 1 |
//! | tuning | pt | 80 | 78 (97.5 %) | 0 | 2 |  |  | spread 2 |
//! | tuning | hi | 80 | 80 (100.0 %) | 0 | 0 | 20/20 |  |  |
//! | tuning | ar | 80 | 80 (100.0 %) | 0 | 0 | 8/8 |  |  |
//! | tuning | vi | 80 | 79 (98.8 %) | 0 | 1 |  |  | spread 1 |
//! | tuning | th | 80 | 80 (100.0 %) | 0 | 0 |  |  |  |
//! | tuning | tl | 80 | 77 (96.2 %) | 1 | 2 |  | en 1 | spread 2 |
//! | tuning | ja | 80 | 80 (100.0 %) | 0 | 0 |  |  |  |
//! | tuning | tr | 80 | 80 (100.0 %) | 0 | 0 |  |  |  |
//! | **tuning** | all | 960 | 947 (98.6 %) | 4 | 9 | 28/28 | tl 2, en 1, ms 1 | spread 9 |
//! | holdout | en | 145 | 144 (99.3 %) | 0 | 1 |  |  | spread 1 |
//! | holdout | id | 80 | 77 (96.2 %) | 2 | 1 |  | ms 2 | spread 1 |
//! | holdout | ms | 80 | 79 (98.8 %) | 0 | 1 |  |  | spread 1 |
//! | holdout | es | 80 | 80 (100.0 %) | 0 | 0 |  |  |  |
//! | holdout | pt | 80 | 75 (93.8 %) | 0 | 5 |  |  | spread 5 |
//! | holdout | hi | 80 | 78 (97.5 %) | 0 | 2 | 20/20 |  | mr 2 |
//! | holdout | ar | 80 | 79 (98.8 %) | 0 | 1 | 8/9 |  | fr 1 |
//! | holdout | vi | 80 | 79 (98.8 %) | 0 | 1 |  |  | spread 1 |
//! | holdout | th | 80 | 80 (100.0 %) | 0 | 0 |  |  |  |
//! | holdout | tl | 80 | 76 (95.0 %) | 1 | 3 |  | en 1 | spread 3 |
//! | holdout | ja | 80 | 79 (98.8 %) | 0 | 1 |  |  | spread 1 |
//! | holdout | tr | 80 | 80 (100.0 %) | 0 | 0 |  |  |  |
//! | **holdout** | all | 1025 | 1006 (98.1 %) | 3 | 16 | 28/29 | ms 2, en 1 | spread 13, mr 2, fr 1 |
//!
//! **Unsupported and mixed lines (crates/attune-lang/testdata)**
//!
//! | file | lines | supported (leaks) | unsupported | unidentified | leaked lines |
//! |---|---|---|---|---|---|
//! | unsupported | 99 | 2 | 73 | 24 | gl→pt, gl→es |
//! | mixed | 22 | 1 | 9 | 12 | sw+en→en |
//!
//! **lingua's own test sentences of unsupported languages** (200 sentences of each of the 63
//! languages lingua has and the gate does not support, `--lingua-testdata DIR`; the worst:
//! Maori 79, Icelandic 54, Albanian 51, Sotho 48, Lithuanian 47 of 200, languages without a
//! decoy passing mostly as Tagalog, Indonesian or Malay)
//!
//! | language | leaked | as |
//! |---|---|---|
//! | **all** | 720/12600 (5.71 %) | |
//!
//! **Cost**
//!
//! | what | figure |
//! |---|---|
//! | languages built in | 34 (12 supported + 22 decoys) |
//! | gate build | 0.1 ms |
//! | first decide (loads models) | 15.2 ms |
//! | time per line (4813 lines) | mean 0.71 ms, p50 0.71 ms, p99 1.77 ms, max 137.53 ms (the line that first needs the word frequencies, parsed then) |
//! | one 98 kB text (3 windows of 500 chars) | 1.81 ms |
//! | peak memory (VmHWM) | 111 MiB (95 before the word frequencies) |
//! | threads of this process at the end | 1 (lingua starts no thread pool) |
//! | this binary | 126.3 MB (an earlier build: 124.3 MB, 110.6 MB stripped); lingua's models are 108.2 MB of it (43.9 MB for the 12 supported languages, 64.1 MB for the decoys), the word frequencies 1.0 MB |
//!
//! # Known limits
//!
//! * Languages lingua does not model and the word lists do not cover come out as their closest
//!   modelled language; if that is a supported one with a high share they pass. Short Galician
//!   lines without a distinctive word pass as Portuguese or Spanish. The regional languages of
//!   the Philippines and Indonesia are the largest such hole: chat lines in 14–15 of them,
//!   written by two writers for this (`testdata/regional.jsonl`, 168 lines, from which the
//!   Balinese, Minangkabau, Ilocano, Hiligaynon, Waray, Bikol, Kapampangan, Pangasinan and
//!   Acehnese/Madurese/Buginese/Banjarese lists, the Cebuano additions and the own-words lists
//!   of step 4 were written; `testdata/regional_check.jsonl`, 150 lines, read only to measure),
//!   passed as Tagalog, Indonesian or Malay 74 of 168 and 84 of 150 times before those lists,
//!   18 and 68 with them, **0 and 29** with the own-words check (`measure`;
//!   `tuning_sets_and_unsupported_lines` holds the bounds). What passes (14 read as Tagalog,
//!   mostly Bikol, Cebuano, Kapampangan and Waray; 15 as Indonesian or Malay, mostly Banjarese,
//!   Balinese and Buginese) has a word of Tagalog's or Indonesian's own, or no word of
//!   the neighbours' lists.
//! * Latin-script languages without a decoy (Maori, Icelandic, Albanian, Sotho, Lithuanian,
//!   Croatian, Czech…) are mostly Unsupported or Unidentified, but 5.7 % of lingua's own test
//!   sentences for the 63 unsupported languages it has pass as a supported language, mostly
//!   Tagalog, Indonesian or Malay (table above).
//! * A short phrase in an unsupported language inside a mostly supported line can pass when
//!   lingua gives it less than 0.2 ("Kesho tunaenda beach, what should I pack for the kids?"
//!   is English at 0.53 with 0.8 on supported languages).
//! * Romanised text of a language other than Hindi and Arabic (romanised Urdu counts as Hindi,
//!   romanised Bengali or Tamil does not) is usually spread and so skipped.

mod language;
mod markers;
mod script;
mod vocabulary;

pub use vocabulary::{VOCABULARY_MAX_DECOY, VOCABULARY_MIN_SHARE, VOCABULARY_MIN_WORDS, VOCABULARY_OWN_WORDS};

use std::borrow::Cow;

pub use language::{languages_of_country, Language};
pub use script::Script;

use markers::{MalayOrIndonesian, RomanisedLanguage};

/// A text longer than this many characters is examined in [`MAX_WINDOWS`] windows of this size.
pub const WINDOW_CHARS: usize = 500;
/// How many windows of a long text are examined (head, middle, tail).
pub const MAX_WINDOWS: usize = 3;
/// Fewer letters than this is too short to identify.
pub const MIN_LETTERS: usize = 3;
/// The least confidence of a best guess ([`LanguageGate::admit_best_guess`]).
pub const BEST_GUESS_MIN_CONFIDENCE: f64 = 0.2;
/// Supported languages holding at least this share of lingua's confidence are a supported
/// mixture, accepted as the top language whatever its own confidence.
pub const MIXTURE_MIN_SUPPORTED_SHARE: f64 = 0.9;
/// A second script with at least this share of a text's letters…
pub const SECOND_SCRIPT_MIN_SHARE: f64 = 0.15;
/// …and at least this many words…
pub const SECOND_SCRIPT_MIN_WORDS: usize = 3;
/// …fails the text when lingua names an unsupported language for those words with at least
/// this confidence.
pub const SECOND_SCRIPT_MIN_CONFIDENCE: f64 = 0.7;
/// The least share of lingua's confidence the supported languages must hold for English
/// confirmed by its function words (the decoys together at most 0.35).
pub const ENGLISH_MIN_SUPPORTED_SHARE: f64 = 0.65;
/// … or, whatever that share, no single decoy at this much: short English spreads 0.3–0.5 over
/// Dutch, German and Italian together, a mixture with one of them puts it on that one.
pub const ENGLISH_MAX_DECOY: f64 = 0.2;
/// A supported top language with at least this confidence…
pub const SPREAD_MIN_CONFIDENCE: f64 = 0.55;
/// …is accepted when no single decoy reaches this much: what short chat leaves to the decoys is
/// spread over several (Spanish: Catalan 0.11, Yoruba 0.10, Italian 0.06), while a mixture with
/// one unsupported language, or that language itself, puts it on that one.
pub const SPREAD_MAX_DECOY: f64 = 0.12;
/// The least share of Latin letters for the romanised-Hindi and Arabizi word lists to apply.
/// How far down lingua's candidates the own-words rule looks, and the least confidence it takes
/// (step 3 of the crate docs).
pub const OWN_WORDS_CANDIDATES: usize = 5;
pub const OWN_WORDS_MIN_CONFIDENCE: f64 = 0.08;
/// The least share of a text's letters that kana and kanji make for it to be Japanese whatever
/// lingua says, when it has kana.
pub const JAPANESE_MIN_SHARE: f64 = 0.5;
const ROMANISED_MIN_LATIN_SHARE: f64 = 0.8;

#[derive(Debug, thiserror::Error)]
pub enum LangError {
    #[error("`{code}` is not the ISO 639-1 code of a language attune-lang knows (see Language::ALL)")]
    UnknownCode { code: String },
    #[error("the supported-language list is empty")]
    NoSupportedLanguages,
    #[error("{name} must be in (0, 1], not {value}")]
    BadThreshold { name: &'static str, value: f64 },
}

/// What the gate decided about a text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LanguageDecision {
    /// In a supported language: may be tagged. `confidence` is lingua's confidence in `language`
    /// (Malay and Indonesian: the two together; a long text: the least over its windows).
    /// `romanised` is true for Hindi in Latin letters and Arabizi, where `confidence` is the
    /// share of the words that gave it away.
    Supported { language: Language, confidence: f64, romanised: bool },
    /// Identified, in a language that is not supported: skip.
    Unsupported { language: Language, confidence: f64 },
    /// Not identified with confidence: skip.
    Unidentified { reason: UnidentifiedReason },
}

/// Why a text was not identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum UnidentifiedReason {
    /// Fewer than [`MIN_LETTERS`] letters: empty, emoji, digits, punctuation.
    TooShort,
    /// lingua's confidence is spread: no language (or no supported mixture) dominates.
    NotConfident,
    /// Has a word in a script none of the supported languages is written in.
    ForeignScript,
    /// Words of a language lingua has no model for (the regional languages of the Philippines
    /// and Indonesia, Galician, Nepali), which a supported neighbour would otherwise absorb.
    UnmodelledLanguage,
    /// Romanised Hindi or Arabizi while the gate was told not to accept romanised text.
    Romanised,
    /// Vietnamese typed without its diacritics ("minh muon mua giay chay bo"): told by its
    /// syllables, and skipped because the text model reads it poorly (crate docs, step 2).
    WithoutDiacritics,
}

impl LanguageDecision {
    /// Whether the text may be tagged (only [`LanguageDecision::Supported`]).
    pub fn may_tag(&self) -> bool {
        matches!(self, LanguageDecision::Supported { .. })
    }

    /// The language decided, supported or not.
    pub fn language(&self) -> Option<Language> {
        match *self {
            LanguageDecision::Supported { language, .. } | LanguageDecision::Unsupported { language, .. } => {
                Some(language)
            }
            LanguageDecision::Unidentified { .. } => None,
        }
    }

    /// The language if it may be tagged.
    pub fn supported_language(&self) -> Option<Language> {
        match *self {
            LanguageDecision::Supported { language, .. } => Some(language),
            _ => None,
        }
    }
}

/// A text the gate found to be in a supported language: the only thing a text tagger accepts
/// (`attune_tag::TextTagger::tag`). It has no public constructor, so text in an unsupported or
/// unidentified language cannot reach topic tagging: the compiler checks it.
///
/// ```compile_fail
/// // Outside this crate a SupportedText cannot be built by hand:
/// let t = attune_lang::SupportedText { text: "hola", language: attune_lang::Language::Spanish, confidence: 1.0, romanised: false };
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SupportedText<'a> {
    text: &'a str,
    language: Language,
    confidence: f64,
    romanised: bool,
}

impl<'a> SupportedText<'a> {
    pub fn text(&self) -> &'a str {
        self.text
    }

    pub fn language(&self) -> Language {
        self.language
    }

    /// See [`LanguageDecision::Supported`].
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    pub fn romanised(&self) -> bool {
        self.romanised
    }
}

/// Identifies languages and decides which texts may be tagged. Build once (it is `Send + Sync`)
/// and share across threads: lingua's models are compiled into the binary and mapped, not
/// copied, and are loaded on first use.
pub struct LanguageGate {
    detector: lingua::LanguageDetector,
    /// Indexed like [`Language::ALL`].
    supported: Vec<bool>,
    supported_list: Vec<Language>,
    /// Of the supported languages, those whose text is admitted (default: all of them): the
    /// rest are identified as supported languages — so they do not weigh against the others in
    /// a mixture — and then turned away as Unsupported.
    admitted: Vec<Language>,
    min_confidence: f64,
    min_supported_share: f64,
    accept_romanised: bool,
}

impl std::fmt::Debug for LanguageGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageGate")
            .field("supported", &self.supported_list)
            .field("admitted", &self.admitted)
            .field("min_confidence", &self.min_confidence)
            .field("min_supported_share", &self.min_supported_share)
            .field("accept_romanised", &self.accept_romanised)
            .finish()
    }
}

fn check_threshold(name: &'static str, value: f64) -> Result<f64, LangError> {
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(LangError::BadThreshold { name, value })
    }
}

fn index(language: Language) -> usize {
    Language::ALL.iter().position(|&l| l == language).expect("every Language is in Language::ALL")
}

impl LanguageGate {
    /// The least confidence of the top language (default).
    pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.5;
    /// The least confidence all supported languages together must hold (default).
    pub const DEFAULT_MIN_SUPPORTED_SHARE: f64 = 0.8;

    /// A gate that accepts `supported` (any of [`Language::ALL`]; the rest are decoys) when the
    /// top language's confidence is at least `min_confidence`, in (0, 1].
    pub fn new(supported: &[Language], min_confidence: f64) -> Result<Self, LangError> {
        if supported.is_empty() {
            return Err(LangError::NoSupportedLanguages);
        }
        let min_confidence = check_threshold("min_confidence", min_confidence)?;
        let mut flags = vec![false; Language::ALL.len()];
        for &l in supported {
            flags[index(l)] = true;
        }
        let supported_list: Vec<Language> = Language::ALL.iter().copied().filter(|&l| flags[index(l)]).collect();
        let all: Vec<lingua::Language> = Language::ALL.iter().map(|l| l.to_lingua()).collect();
        // No preloading: lingua's models are read lazily from the binary on first use (and
        // preloading would start a rayon thread pool).
        let detector = lingua::LanguageDetectorBuilder::from_languages(&all).build();
        Ok(LanguageGate {
            detector,
            supported: flags,
            admitted: supported_list.clone(),
            supported_list,
            min_confidence,
            min_supported_share: Self::DEFAULT_MIN_SUPPORTED_SHARE,
            accept_romanised: true,
        })
    }

    /// [`LanguageGate::new`] from ISO 639-1 codes ("en", "id", …).
    pub fn from_codes<S: AsRef<str>>(codes: &[S], min_confidence: f64) -> Result<Self, LangError> {
        let languages = codes.iter().map(|c| Language::from_code(c.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Self::new(&languages, min_confidence)
    }

    /// The product's default set ([`Language::DEFAULT_SUPPORTED`]) with the default thresholds.
    pub fn with_defaults() -> Self {
        Self::new(Language::DEFAULT_SUPPORTED, Self::DEFAULT_MIN_CONFIDENCE).expect("the defaults are valid")
    }

    /// Sets the least share of lingua's confidence that the supported languages together must
    /// hold, in (0, 1] (default [`Self::DEFAULT_MIN_SUPPORTED_SHARE`]).
    pub fn with_min_supported_share(mut self, share: f64) -> Result<Self, LangError> {
        self.min_supported_share = check_threshold("min_supported_share", share)?;
        Ok(self)
    }

    /// Whether romanised Hindi and Arabizi are accepted as Hindi and Arabic (default true) or
    /// skipped as [`UnidentifiedReason::Romanised`].
    pub fn accept_romanised(mut self, accept: bool) -> Self {
        self.accept_romanised = accept;
        self
    }

    /// The languages that may be tagged, in [`Language::ALL`] order.
    pub fn supported(&self) -> &[Language] {
        &self.supported_list
    }

    /// Admit only the supported languages among `languages` (e.g. those a text model is
    /// calibrated for); the other supported languages are still identified as such, then turned
    /// away as [`LanguageDecision::Unsupported`]. Identification is unchanged: restricting the
    /// supported set itself would make a short English line, whose confidence lingua shares with
    /// Tagalog or Spanish, fail as a mixture.
    pub fn admitting(mut self, languages: &[Language]) -> Result<Self, LangError> {
        self.admitted = self.supported_list.iter().copied().filter(|l| languages.contains(l)).collect();
        if self.admitted.is_empty() {
            return Err(LangError::NoSupportedLanguages);
        }
        Ok(self)
    }

    /// The languages whose text [`LanguageGate::admit`] lets through.
    pub fn admitted(&self) -> &[Language] {
        &self.admitted
    }

    pub fn is_supported(&self, language: Language) -> bool {
        self.supported[index(language)]
    }

    pub fn min_confidence(&self) -> f64 {
        self.min_confidence
    }

    pub fn min_supported_share(&self) -> f64 {
        self.min_supported_share
    }

    /// lingua's confidence values for `text` as it stands (no cleaning, windows or rules), highest
    /// first: for measurements and for explaining a decision.
    pub fn confidence_values(&self, text: &str) -> Vec<(Language, f64)> {
        self.detector
            .compute_language_confidence_values(text)
            .into_iter()
            .filter_map(|(l, c)| Language::from_lingua(l).map(|l| (l, c)))
            .collect()
    }

    /// [`LanguageGate::decide`], with the proof a tagger needs when the text may be tagged.
    /// Only the [admitted](LanguageGate::admitting) languages pass; another supported language
    /// comes back as [`LanguageDecision::Unsupported`].
    pub fn admit<'a>(&self, text: &'a str) -> Result<SupportedText<'a>, LanguageDecision> {
        match self.decide(text) {
            LanguageDecision::Supported { language, confidence, romanised } if self.admitted.contains(&language) => {
                Ok(SupportedText { text, language, confidence, romanised })
            }
            LanguageDecision::Supported { language, confidence, .. } => {
                Err(LanguageDecision::Unsupported { language, confidence })
            }
            other => Err(other),
        }
    }

    /// A part of a text the gate admitted (`whole`), such as one side of a chat: read by itself
    /// when it can be, and as the whole's language when it is too short or too mixed to tell
    /// alone ("thanks!", "ok, and for two nights?"). A part that reads by itself as another
    /// language, or in a script or language no model covers, or as Vietnamese typed without its
    /// diacritics (the user's side of a chat whose assistant writes them), is not admitted.
    pub fn admit_part<'a>(
        &self,
        part: &'a str,
        whole: &SupportedText<'_>,
    ) -> Result<SupportedText<'a>, LanguageDecision> {
        match self.admit(part) {
            Err(LanguageDecision::Unidentified {
                reason: UnidentifiedReason::TooShort | UnidentifiedReason::NotConfident,
            }) => Ok(SupportedText {
                text: part,
                language: whole.language,
                confidence: whole.confidence,
                romanised: whole.romanised,
            }),
            other => other,
        }
    }

    /// Text too short to tell its language with confidence, yet meant to be read — a sign, a
    /// label, a poster in a photo: admitted as lingua's most likely language when that is one
    /// the gate admits, ranks first among all the languages lingua knows (decoys included) and
    /// has at least [`BEST_GUESS_MIN_CONFIDENCE`]. Text the gate decides on is treated as by
    /// [`LanguageGate::admit`]: a confident reading of another language is never overruled.
    pub fn admit_best_guess<'a>(&self, text: &'a str) -> Result<SupportedText<'a>, LanguageDecision> {
        match self.admit(text) {
            Err(LanguageDecision::Unidentified { reason: UnidentifiedReason::NotConfident }) => {
                let values = self.detector.compute_language_confidence_values(text);
                match values.first().and_then(|&(l, c)| Some((Language::from_lingua(l)?, c))) {
                    Some((language, confidence))
                        if confidence >= BEST_GUESS_MIN_CONFIDENCE && self.admitted.contains(&language) =>
                    {
                        Ok(SupportedText { text, language, confidence, romanised: false })
                    }
                    _ => Err(LanguageDecision::Unidentified { reason: UnidentifiedReason::NotConfident }),
                }
            }
            other => other,
        }
    }

    /// Decides whether `text` may be tagged. Examines at most [`MAX_WINDOWS`] windows of
    /// [`WINDOW_CHARS`] characters, whatever the length of `text`.
    pub fn decide(&self, text: &str) -> LanguageDecision {
        let decisions: Vec<LanguageDecision> = windows(text).into_iter().map(|w| self.decide_window(w)).collect();
        combine(&decisions)
    }

    fn decide_window(&self, raw: &str) -> LanguageDecision {
        use LanguageDecision::*;
        let text = clean(raw);
        let census = script::Census::of(&text);
        if census.letters < MIN_LETTERS {
            return Unidentified { reason: UnidentifiedReason::TooShort };
        }
        let words = markers::words(&text);
        let has_kana = census.count(Script::Kana) > 0;
        let foreign = script::has_foreign_word(&text, |s| self.allows_script(s, has_kana));

        let romanised = if !foreign && census.share(Script::Latin) >= ROMANISED_MIN_LATIN_SHARE {
            markers::romanised(&words)
        } else {
            None
        };
        let decision = match romanised {
            Some(_) if !self.accept_romanised => return Unidentified { reason: UnidentifiedReason::Romanised },
            Some((r, share)) => {
                let language = match r {
                    RomanisedLanguage::Hindi => Language::Hindi,
                    RomanisedLanguage::Arabic => Language::Arabic,
                };
                self.identified(language, share, true)
            }
            // Vietnamese typed without its diacritics, which lingua reads like Swahili or Yoruba
            // and the text model poorly: named, and skipped.
            None if !foreign && markers::is_unaccented_vietnamese(&words) => {
                return Unidentified { reason: UnidentifiedReason::WithoutDiacritics };
            }
            // Kana is Japanese's alone. lingua splits a text at spaces and reads a mixed one by
            // its Latin words ("King Gnuが好きな人におすすめのバンド教えて": ro 0.21, de 0.16).
            None => match japanese_share(&text, &census) {
                Some(share) => self.identified(Language::Japanese, share, false),
                None => self.decide_by_confidence(&text, &census, &words),
            },
        };

        // lingua reads only the letters of the script most of the text is in: a second script's
        // words (an Urdu passage under an English header) are decided on their own.
        let decision = match decision {
            Supported { .. } => self.second_script_language(&census, &words).unwrap_or(decision),
            other => other,
        };

        match decision {
            Unsupported { .. } => decision,
            _ if foreign => Unidentified { reason: UnidentifiedReason::ForeignScript },
            _ if markers::unmodelled(&words).is_some() => {
                Unidentified { reason: UnidentifiedReason::UnmodelledLanguage }
            }
            // One word of a neighbour lingua has no model for, and not one of the language's own.
            Supported { language, .. } if markers::neighbour_not_own(language, &text, &words).is_some() => {
                Unidentified { reason: UnidentifiedReason::UnmodelledLanguage }
            }
            other => other,
        }
    }

    /// Step 3 of the crate docs: lingua's confidence values and the thresholds.
    fn decide_by_confidence(&self, text: &str, census: &script::Census, words: &[String]) -> LanguageDecision {
        use LanguageDecision::*;
        let values = self.confidence_values(text);
        let Some(&(top, top_confidence)) = values.first() else {
            return Unidentified { reason: UnidentifiedReason::NotConfident };
        };
        if top_confidence <= 0.0 {
            return Unidentified { reason: UnidentifiedReason::NotConfident };
        }
        let confidence_of = |l: Language| values.iter().find(|(m, _)| *m == l).map_or(0.0, |(_, c)| *c);
        // Two languages whose models lingua confuses on chat count as one for the confidence:
        // Malay and Indonesian always, told apart by chat words (lingua's order breaking ties),
        // whether or not both are supported; Hindi with Marathi, and Turkish with Azerbaijani,
        // only when the text's own words are Hindi's or Turkish's and not one is the other's.
        let pair = match top {
            Language::Malay | Language::Indonesian => Some([Language::Malay, Language::Indonesian]),
            Language::Hindi | Language::Marathi if markers::is_hindi_not_marathi(words) => {
                Some([Language::Hindi, Language::Marathi])
            }
            Language::Turkish | Language::Azerbaijani if markers::is_turkish_not_azerbaijani(text, words) => {
                Some([Language::Turkish, Language::Azerbaijani])
            }
            _ => None,
        };
        let (language, confidence) = match pair {
            Some(members) => {
                // The pair's first member, Malay and Indonesian aside: their chat words choose.
                let language = if members[0] == Language::Malay { malay_or_indonesian(top, words) } else { members[0] };
                (language, (confidence_of(members[0]) + confidence_of(members[1])).min(1.0))
            }
            None => (top, top_confidence),
        };
        if !self.is_supported(language) {
            return if confidence >= self.min_confidence {
                Unsupported { language, confidence }
            } else {
                self.own_words(text, words, &values)
            };
        }
        let supported_share: f64 = values
            .iter()
            .filter(|(l, _)| pair.is_some_and(|members| members.contains(l)) || self.is_supported(*l))
            .map(|(_, c)| c)
            .sum();
        let devanagari = census.dominant() == Some(Script::Devanagari);
        let confident =
            confidence >= self.min_confidence && (devanagari || supported_share >= self.min_supported_share);
        // A mixture of supported languages (Taglish, English with Malay words) is accepted as its
        // top language even when no one of them reaches min_confidence.
        let supported_mixture = supported_share >= MIXTURE_MIN_SUPPORTED_SHARE;
        let tagalog = language == Language::Tagalog && markers::is_tagalog(words);
        // Informal English: led by English, confirmed by its function words, and the decoys
        // together still well short of a language of their own.
        let largest_decoy = values
            .iter()
            .filter(|(l, _)| !self.is_supported(*l) && !pair.is_some_and(|members| members.contains(l)))
            .map(|(_, c)| *c)
            .fold(0.0, f64::max);
        // Plain English only: a letter outside ASCII (à, ñ, ç, ş…) is another language's word.
        let english = language == Language::English
            && (supported_share >= ENGLISH_MIN_SUPPORTED_SHARE || largest_decoy < ENGLISH_MAX_DECOY)
            && !text.chars().any(|c| c.is_alphabetic() && !c.is_ascii())
            && markers::is_english(words);
        let spread = confidence >= SPREAD_MIN_CONFIDENCE && largest_decoy < SPREAD_MAX_DECOY;
        if confident || supported_mixture || tagalog || english || spread {
            return Supported { language, confidence, romanised: false };
        }
        // Taglish: Tagalog and English lead, the decoys far behind, Tagalog's words in it.
        let second = values.get(1).map(|(l, _)| *l);
        let taglish = matches!(
            (language, second),
            (Language::Tagalog, Some(Language::English)) | (Language::English, Some(Language::Tagalog))
        ) && self.is_supported(Language::Tagalog)
            && largest_decoy < SPREAD_MAX_DECOY
            && markers::is_taglish(words);
        if taglish {
            return Supported {
                language: Language::Tagalog,
                confidence: confidence_of(Language::Tagalog),
                romanised: false,
            };
        }
        self.own_words(text, words, &values)
    }

    /// Short chat with names, brands and English words, where lingua spreads its confidence and
    /// no decoy reaches `min_confidence`: a supported language among lingua's first
    /// [`OWN_WORDS_CANDIDATES`] at [`OWN_WORDS_MIN_CONFIDENCE`] or more, confirmed by that
    /// language's own words or letters (the first such candidate wins), or else by the
    /// frequencies of all its words ([`Self::by_vocabulary`]).
    fn own_words(&self, text: &str, words: &[String], values: &[(Language, f64)]) -> LanguageDecision {
        let by_own_words = self
            .candidates(values)
            .find(|(l, _)| match l {
                Language::Spanish => markers::is_spanish(text, words),
                Language::Portuguese => markers::is_portuguese(words),
                Language::Vietnamese => markers::is_vietnamese(words),
                Language::Tagalog => markers::is_tagalog(words),
                Language::Turkish => markers::is_turkish_not_azerbaijani(text, words),
                Language::Malay | Language::Indonesian => markers::is_malay_or_indonesian(words),
                _ => false,
            })
            .copied();
        match by_own_words.or_else(|| self.by_vocabulary(text, words, values)) {
            None => LanguageDecision::Unidentified { reason: UnidentifiedReason::NotConfident },
            // Malay or Indonesian by their chat words, as above: the other one may be unsupported.
            Some((candidate, confidence)) => self.identified(malay_or_indonesian(candidate, words), confidence, false),
        }
    }

    /// A language the gate has identified: Supported when the policy supports it, else Unsupported.
    fn identified(&self, language: Language, confidence: f64, romanised: bool) -> LanguageDecision {
        if self.is_supported(language) {
            LanguageDecision::Supported { language, confidence, romanised }
        } else {
            LanguageDecision::Unsupported { language, confidence }
        }
    }

    /// The supported languages among lingua's first [`OWN_WORDS_CANDIDATES`] with at least
    /// [`OWN_WORDS_MIN_CONFIDENCE`], in lingua's order.
    fn candidates<'v>(&self, values: &'v [(Language, f64)]) -> impl Iterator<Item = &'v (Language, f64)> + use<'_, 'v> {
        values
            .iter()
            .take(OWN_WORDS_CANDIDATES)
            .filter(|(l, c)| *c >= OWN_WORDS_MIN_CONFIDENCE && self.is_supported(*l))
    }

    /// A candidate confirmed by how often its words are written (`vocabulary`): no decoy at
    /// [`vocabulary::VOCABULARY_MAX_DECOY`] or more, no word of romanised Hindi's or Arabizi's
    /// own, and names (capitalised words not opening a sentence) left out.
    fn by_vocabulary(&self, text: &str, words: &[String], values: &[(Language, f64)]) -> Option<(Language, f64)> {
        let decoy_seen = values.iter().any(|(l, c)| !self.is_supported(*l) && *c >= vocabulary::VOCABULARY_MAX_DECOY);
        if decoy_seen || markers::has_romanised_word(words) {
            return None;
        }
        vocabulary::confirmed_language(&markers::words_not_names(text, words), self.candidates(values).copied())
    }

    /// The unsupported language of the words in the text's second script, if that script has at
    /// least [`SECOND_SCRIPT_MIN_SHARE`] of the letters and [`SECOND_SCRIPT_MIN_WORDS`] words, and
    /// lingua names a decoy for them with at least [`SECOND_SCRIPT_MIN_CONFIDENCE`].
    fn second_script_language(&self, census: &script::Census, words: &[String]) -> Option<LanguageDecision> {
        let dominant = census.dominant()?;
        let second = census.second(dominant)?;
        if census.share(second) < SECOND_SCRIPT_MIN_SHARE {
            return None;
        }
        let in_second: Vec<&str> = words
            .iter()
            .map(String::as_str)
            .filter(|w| w.chars().filter_map(Script::of).next() == Some(second))
            .collect();
        if in_second.len() < SECOND_SCRIPT_MIN_WORDS {
            return None;
        }
        let (top, confidence) = *self.confidence_values(&in_second.join(" ")).first()?;
        (!self.is_supported(top) && confidence >= SECOND_SCRIPT_MIN_CONFIDENCE)
            .then_some(LanguageDecision::Unsupported { language: top, confidence })
    }

    /// Whether a letter of `script` may appear (in words) in supported text: the script of a
    /// supported language, with Han only beside kana when Japanese is supported (Han alone is
    /// Chinese).
    fn allows_script(&self, script: Script, has_kana: bool) -> bool {
        self.supported_list.iter().any(|l| l.scripts().contains(&script))
            && (script != Script::Han
                || (has_kana && self.is_supported(Language::Japanese))
                || self.supported_list.iter().any(|l| *l != Language::Japanese && l.scripts().contains(&Script::Han)))
    }
}

/// Malay or Indonesian as their chat words say (`language` on a tie), for a `language` that is
/// one of the two; any other language as it is.
fn malay_or_indonesian(language: Language, words: &[String]) -> Language {
    match (language, markers::malay_or_indonesian(words)) {
        (Language::Malay | Language::Indonesian, Some(MalayOrIndonesian::Malay)) => Language::Malay,
        (Language::Malay | Language::Indonesian, Some(MalayOrIndonesian::Indonesian)) => Language::Indonesian,
        _ => language,
    }
}

/// The share of its letters kana and kanji make, when a text with kana is Japanese: that share
/// is at least [`JAPANESE_MIN_SHARE`], or its Latin words are all capitalised, the names of
/// products and bands that Japanese chat writes in Latin letters ("Pixel BudsとAirPods Pro、
/// Android使いならどっち？").
fn japanese_share(text: &str, census: &script::Census) -> Option<f64> {
    if census.count(Script::Kana) == 0 {
        return None;
    }
    let share = census.share(Script::Kana) + census.share(Script::Han);
    let latin_lowercase_word = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| w.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    (share >= JAPANESE_MIN_SHARE || !latin_lowercase_word).then_some(share)
}

/// The text without links, e-mail addresses and @mentions, which are not in any language and
/// would pull lingua towards English.
fn clean(text: &str) -> Cow<'_, str> {
    let noise = |t: &str| t.contains("://") || t.starts_with("www.") || t.contains('@');
    if !text.split_whitespace().any(noise) {
        return Cow::Borrowed(text);
    }
    let kept: Vec<&str> = text.split_whitespace().filter(|t| !noise(t)).collect();
    Cow::Owned(kept.join(" "))
}

/// The windows of `text` to examine: the whole text if it has at most [`WINDOW_CHARS`]
/// characters, else head, middle and tail windows of that many characters, trimmed to whole
/// words where a space is near the cut. Bounded work: at most [`MAX_WINDOWS`] × [`WINDOW_CHARS`]
/// characters are visited, whatever the length of `text`.
fn windows(text: &str) -> Vec<&str> {
    if text.char_indices().nth(WINDOW_CHARS).is_none() {
        return vec![text];
    }
    let len = text.len();
    // Byte offset of the WINDOW_CHARS-th character from `start`, or the end.
    let forward =
        |start: usize| -> usize { text[start..].char_indices().nth(WINDOW_CHARS).map_or(len, |(i, _)| start + i) };
    let head = (0, forward(0));
    let mut mid_start = len / 2;
    while !text.is_char_boundary(mid_start) {
        mid_start += 1;
    }
    let mid = (mid_start, forward(mid_start));
    let tail_start = text.char_indices().rev().nth(WINDOW_CHARS - 1).map_or(0, |(i, _)| i);
    let tail = (tail_start, len);
    [head, mid, tail].into_iter().map(|(s, e)| trim_to_words(text, s, e).trim()).collect()
}

/// `text[start..end]` without the partial words at cuts (a space within the first or last 40
/// characters of a cut); text without spaces (Thai, Japanese) is left as it is.
fn trim_to_words(text: &str, start: usize, end: usize) -> &str {
    const NEAR: usize = 40;
    let mut s = start;
    if start > 0 {
        if let Some((i, c)) = text[start..end].char_indices().take(NEAR).find(|(_, c)| c.is_whitespace()) {
            s = start + i + c.len_utf8();
        }
    }
    let mut e = end;
    if end < text.len() {
        if let Some((i, _)) = text[s..end].char_indices().rev().take(NEAR).find(|(_, c)| c.is_whitespace()) {
            e = s + i;
        }
    }
    &text[s..e]
}

/// One decision from the windows': Unsupported if any window is (the most confident such);
/// Unidentified if any window with letters is (the first reason); otherwise Supported as the
/// language most windows have (ties: the earliest), with the least confidence.
fn combine(decisions: &[LanguageDecision]) -> LanguageDecision {
    use LanguageDecision::*;
    if let [single] = decisions {
        return *single;
    }
    let with_letters: Vec<&LanguageDecision> =
        decisions.iter().filter(|d| !matches!(d, Unidentified { reason: UnidentifiedReason::TooShort })).collect();
    if with_letters.is_empty() {
        return Unidentified { reason: UnidentifiedReason::TooShort };
    }
    let unsupported = with_letters
        .iter()
        .filter_map(|d| match d {
            Unsupported { language, confidence } => Some((*language, *confidence)),
            _ => None,
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((language, confidence)) = unsupported {
        return Unsupported { language, confidence };
    }
    if let Some(Unidentified { reason }) = with_letters.iter().find(|d| matches!(d, Unidentified { .. })) {
        return Unidentified { reason: *reason };
    }
    let supported: Vec<(Language, f64, bool)> = with_letters
        .iter()
        .filter_map(|d| match d {
            Supported { language, confidence, romanised } => Some((*language, *confidence, *romanised)),
            _ => None,
        })
        .collect();
    let count = |l: Language| supported.iter().filter(|(m, _, _)| *m == l).count();
    let language = supported
        .iter()
        .map(|(l, _, _)| *l)
        .max_by_key(|&l| (count(l), std::cmp::Reverse(first_index(&supported, l))))
        .expect("non-empty");
    let confidence = supported.iter().map(|(_, c, _)| *c).fold(1.0, f64::min);
    let romanised = supported.iter().any(|(l, _, r)| *l == language && *r);
    Supported { language, confidence, romanised }
}

fn first_index(supported: &[(Language, f64, bool)], language: Language) -> usize {
    supported.iter().position(|(l, _, _)| *l == language).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests;
