use super::*;
use std::sync::LazyLock;

static GATE: LazyLock<LanguageGate> = LazyLock::new(LanguageGate::with_defaults);

fn decide(text: &str) -> LanguageDecision {
    GATE.decide(text)
}

#[track_caller]
fn assert_supported(text: &str, code: &str) {
    match decide(text) {
        LanguageDecision::Supported { language, .. } if language.code() == code => {}
        other => panic!("{text:?}: expected Supported {code}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_supported(text: &str) {
    let d = decide(text);
    assert!(!d.may_tag(), "{text:?}: must not be tagged, got {d:?}");
}

#[test]
fn gate_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LanguageGate>();
    check::<LanguageDecision>();
}

#[test]
fn bad_configuration_is_an_error() {
    assert!(matches!(LanguageGate::new(&[], 0.5), Err(LangError::NoSupportedLanguages)));
    for bad in [0.0, -0.1, 1.5, f64::NAN] {
        assert!(matches!(LanguageGate::new(&[Language::English], bad), Err(LangError::BadThreshold { .. })), "{bad}");
    }
    assert!(matches!(
        LanguageGate::with_defaults().with_min_supported_share(0.0),
        Err(LangError::BadThreshold { name: "min_supported_share", .. })
    ));
    assert!(
        matches!(LanguageGate::from_codes(&["en", "xx"], 0.5), Err(LangError::UnknownCode { code }) if code == "xx")
    );
    let gate = LanguageGate::from_codes(&["tl", "en"], 0.5).unwrap();
    assert_eq!(gate.supported(), [Language::English, Language::Tagalog]);
    assert!(gate.is_supported(Language::Tagalog) && !gate.is_supported(Language::Indonesian));
}

#[test]
fn every_supported_language() {
    // Written for these tests (not taken from the holdout sets): chat lines to an assistant.
    let cases = [
        ("en", "can you recommend a lightweight tent for a weekend hike in the mountains?"),
        ("en", "what's a good recipe for banana bread that isn't too sweet"),
        ("id", "Rekomendasi tempat makan enak di Bandung yang murah dong, buat rame-rame"),
        ("id", "Gimana cara ngilangin bau apek di lemari baju? Udah dijemur tetep bau"),
        ("ms", "Nak cari kedai makan sedap kat Penang, korang ada cadangan tak?"),
        ("ms", "Macam mana nak jaga pokok cili dalam pasu supaya berbuah lebat?"),
        ("es", "¿Me recomiendas un buen sitio para comer paella en Valencia este sábado?"),
        ("es", "quiero empezar a correr por las mañanas, ¿cómo hago un plan para principiantes?"),
        ("pt", "Qual é o melhor celular custo-benefício até dois mil reais hoje em dia?"),
        ("pt", "Vou viajar para Lisboa em maio, quais bairros vale a pena visitar?"),
        ("hi", "दिल्ली में सबसे अच्छे छोले भटूरे कहाँ मिलते हैं? इस रविवार जाना है"),
        ("hi", "मुझे गिटार सीखना है, शुरुआत के लिए कौन सा गिटार लूँ?"),
        ("ar", "أبغى أتعلم الطبخ، وش أسهل الأكلات اللي أبدأ فيها؟"),
        ("ar", "ما هي أفضل الأماكن السياحية في إسطنبول للعائلات؟"),
        ("vi", "Cho mình hỏi quán phở nào ngon ở quận 1 vậy?"),
        ("vi", "Mình muốn mua laptop để học lập trình, tầm giá 15 triệu thì nên chọn máy nào?"),
        ("th", "แนะนำร้านส้มตำอร่อยๆแถวสีลมหน่อยครับ"),
        ("th", "อยากเริ่มวิ่งตอนเช้าต้องเตรียมตัวยังไงบ้าง"),
        ("tl", "Saan masarap kumain ng sisig dito sa Pampanga? Gusto ko yung authentic"),
        ("tl", "Paano ba mag-alaga ng aso na bagong ampon? Medyo takot pa siya sa tao"),
        ("ja", "週末に箱根で温泉に入りたいんだけど、おすすめの宿ある？"),
        ("ja", "初心者でも簡単に作れるパンのレシピを教えてください"),
        ("tr", "İstanbul'da iyi bir kahvaltı mekanı önerir misin? Hafta sonu gideceğiz"),
        ("tr", "Yeni başlayanlar için hangi gitar modelini tavsiye edersin?"),
    ];
    for (code, text) in cases {
        assert_supported(text, code);
    }
}

#[test]
fn unsupported_languages_are_never_supported() {
    let cases = [
        ("ko", "이번 주말에 친구들이랑 캠핑 가려고 하는데 준비물 알려줘"),
        ("sw", "Nataka kupika pilau leo jioni, nahitaji viungo gani?"),
        ("sw", "Tunapanga safari ya kwenda Zanzibar mwezi ujao"),
        ("de", "Kannst du mir ein gutes Restaurant in der Nähe vom Hauptbahnhof empfehlen?"),
        ("fr", "Je cherche une recette de crêpes sans lait, t'as une idée ?"),
        ("it", "Mi consigli una pizzeria buona vicino al Colosseo?"),
        ("nl", "Ik zoek een goedkope fiets om naar mijn werk te gaan"),
        ("ru", "Мы с друзьями едем на выходных на рыбалку, что взять с собой?"),
        ("zh", "这个周末我想和朋友去爬山，需要准备什么？"),
        ("fa", "آخر هفته با دوستام می‌خوایم بریم کوه، چی باید ببریم؟"),
        ("ur", "کیا آپ لاہور میں کوئی اچھا ریسٹورنٹ بتا سکتے ہیں؟"),
        ("mr", "उद्या आम्ही सिंहगडावर ट्रेकला जाणार आहोत"),
        ("bn", "ঢাকায় ভালো বিরিয়ানি কোথায় পাওয়া যায়?"),
        ("ca", "Em pots recomanar un bon restaurant a Barcelona per sopar aquesta nit?"),
        ("az", "Bakıda yaxşı restoran tövsiyə edə bilərsən?"),
        ("so", "Berri waxaan u socdaa suuqa si aan u iibsado dhar cusub"),
        ("yo", "Mo fẹ́ se ìrẹsì jọ̀lọ́ọ̀fù fún àwọn ọ̀rẹ́ mi lọ́la"),
        ("pl", "Czy możesz polecić dobrą restaurację w Krakowie?"),
    ];
    for (code, text) in cases {
        match decide(text) {
            LanguageDecision::Unsupported { language, .. } => assert_eq!(language.code(), code, "{text}"),
            LanguageDecision::Unidentified { .. } => {}
            d => panic!("{text:?} ({code}) must not be Supported: {d:?}"),
        }
    }
    // Without a model at all: unidentified, never supported.
    for text in [
        "አዲስ አበባ ውስጥ ጥሩ ምግብ ቤት ልትጠቁመኝ ትችላለህ?",                    // Amharic
        "តើអ្នកអាចណែនាំភោជនីយដ្ឋានល្អនៅភ្នំពេញបានទេ?",                       // Khmer
        "ရန်ကုန်မှာ စားလို့ကောင်းတဲ့ ဆိုင် ဘယ်မှာရှိလဲ",                            // Burmese
        "ຢູ່ວຽງຈັນມີຮ້ານອາຫານແຊບໆບໍ່?",                                  // Lao
        "Θέλω να πάω διακοπές στην Κρήτη τον Ιούλιο, τι να δω;",  // Greek
        "אני מחפש מסעדה טובה בתל אביב לערב שישי",                 // Hebrew
        "Piye kabare, wis suwe ora ketemu",                       // Javanese
        "Mengko bengi aku arep nonton bal-balan karo kancaku",    // Javanese
        "Kumaha damang? Tos lami teu patepang",                   // Sundanese
        "Asa ko makapalit ug barato nga cellphone diri sa Cebu?", // Cebuano
        "Moadto mi sa baybayon ugma, mouban ka?",                 // Cebuano
        "काठमाडौंमा राम्रो खाना पाइने ठाउँ कहाँ छ?",                   // Nepali
        "भोलि हामी पोखरा घुम्न जाँदैछौं",                              // Nepali
    ] {
        assert_not_supported(text);
    }
}

#[test]
fn no_letters_or_too_short_is_unidentified() {
    for text in ["", "   ", "😀😀🔥🔥", "12345 678", "!!! ??? ...", "👍", "ok", "https://example.com/a/b", "@someone"]
    {
        assert_eq!(decide(text), LanguageDecision::Unidentified { reason: UnidentifiedReason::TooShort }, "{text:?}");
    }
}

#[test]
fn short_ambiguous_lines_fail_closed() {
    // Too little to tell; none of these may come out as a confident supported language.
    for text in ["lol", "haha", "hmm ok", "yes no"] {
        let d = decide(text);
        assert!(
            matches!(
                d,
                LanguageDecision::Unidentified { .. } | LanguageDecision::Supported { language: Language::English, .. }
            ),
            "{text:?}: {d:?}"
        );
    }
}

#[test]
fn mixed_among_supported_languages_is_the_dominant_one() {
    assert_supported("Pa-help naman, anong magandang laptop for video editing na budget 40k?", "tl");
    assert_supported("Sino may alam ng good coffee shop sa Makati na pwedeng mag-work buong araw?", "tl");
    assert_supported("Mau beli sepatu running yang bagus buat marathon, budget 1 juta, ada rekomendasi?", "id");
    assert_supported("Korang ada recommend tak cafe yang best untuk study kat area Bangsar?", "ms");
    assert_supported("Aku nak beli laptop baru untuk gaming, budget dalam RM4k, apa yang best sekarang?", "ms");
    // Names and English words spread this one thin (lingua: no language at 0.5); Malay and
    // Indonesian's own words ("nak", "ada", "tak", "yang") then confirm it.
    assert_supported("Weekend ni nak pergi Cameron Highlands, ada homestay best tak yang murah?", "ms");
    // Nothing but names and a brand: skipped, never mislabelled.
    assert_eq!(
        decide("Vario 160 atau NMax?"),
        LanguageDecision::Unidentified { reason: UnidentifiedReason::NotConfident }
    );
    assert_supported("मुझे एक अच्छा smartphone चाहिए 20000 के अंदर, camera अच्छा होना चाहिए", "hi");
}

#[test]
fn romanised_hindi_and_arabizi() {
    for text in [
        "yaar kal movie dekhne chalte hain",
        "bhai koi accha sa phone batao 15k ke andar, camera achha hona chahiye",
        "mujhe Goa jaana hai December mein, kahan rukna sahi rahega?",
    ] {
        match decide(text) {
            LanguageDecision::Supported { language: Language::Hindi, romanised: true, .. } => {}
            d => panic!("{text:?}: {d:?}"),
        }
    }
    for text in [
        "ana 3ayez a3raf feen a7san koshary fel balad",
        "yalla ya habibi, el match el naharda 7elw awi",
        "momken ta2ooli eh a7san mat3am fel Zamalek?",
    ] {
        match decide(text) {
            LanguageDecision::Supported { language: Language::Arabic, romanised: true, .. } => {}
            d => panic!("{text:?}: {d:?}"),
        }
    }
    let strict = LanguageGate::with_defaults().accept_romanised(false);
    assert_eq!(
        strict.decide("yaar kal movie dekhne chalte hain"),
        LanguageDecision::Unidentified { reason: UnidentifiedReason::Romanised }
    );
    // Without Hindi in the set, romanised Hindi is identified and unsupported.
    let no_hindi = LanguageGate::new(&[Language::English], 0.5).unwrap();
    assert!(matches!(
        no_hindi.decide("yaar kal movie dekhne chalte hain"),
        LanguageDecision::Unsupported { language: Language::Hindi, .. }
    ));
}

#[test]
fn mixtures_with_unsupported_languages_are_not_supported() {
    for text in [
        "오늘 저녁 뭐 먹지? maybe pizza or something",
        "I want to visit Seoul next month, 어디 가면 좋아?",
        "我想去 Bali 度假，有什么 recommendation 吗",
        "ሰላም ወንድሜ, can you help me find a cheap hotel in Dubai?",
        "Привет! I need a good restaurant in Phuket for tonight",
        "Привет, Antalya'da iyi bir otel önerir misin?",
        "ভাই, which phone is best under 20k for gaming?",
        "Ich suche ein günstiges Hotel near Kuta beach, any tips?",
        "Wir fliegen nächste Woche nach Jakarta, ada rekomendasi hotel murah?",
        "Ninatafuta hoteli nzuri Jakarta, saya mau yang murah dan dekat pantai",
        "Demà anem a la platja amb els amics, ¿qué me recomiendas llevar?",
        "Piye carane nggawe CV sing apik kanggo fresh graduate?",
        "Aku arep tuku HP anyar, enake merk apa ya?",
        "Unsa ang nindot nga resto diri sa Cebu? Gusto ko sana ng seafood",
    ] {
        assert_not_supported(text);
    }
}

#[test]
fn a_second_script_is_decided_on_its_own() {
    // lingua scores only the dominant script's letters; the Urdu part must still fail the text.
    let d = decide("Please read the full match report on our website for more details and photos: کل میچ میں پاکستان جیت گیا، بہت مزہ آیا");
    assert!(matches!(d, LanguageDecision::Unsupported { language: Language::Urdu, .. }), "{d:?}");
    // Two supported languages in two scripts pass as the dominant one.
    assert_supported("Read the full report on our website for more details: كل عام وأنتم بخير يا أصدقائي الأعزاء", "en");
    assert_supported("Dear customers, our store opens at 9: आज हमारी दुकान सुबह नौ बजे खुलेगी", "en");
    assert_not_supported("Dear customers, our store opens at 9: उद्या आमचे दुकान सकाळी नऊ वाजता उघडेल");
}

#[test]
fn malay_and_indonesian_apart() {
    assert_supported("Korang tahu tak kedai roti canai yang sedap kat Shah Alam?", "ms");
    assert_supported("Boleh tak saya tukar tarikh tempahan hotel tanpa caj tambahan?", "ms");
    assert_supported("Gue pengen liburan ke Bali tapi budget tipis banget, ada saran nggak?", "id");
    assert_supported("Kalo mau bikin kopi susu gula aren sendiri di rumah gimana caranya?", "id");
}

#[test]
fn links_and_mentions_are_ignored() {
    assert_supported("@budi coba cek https://www.tokopedia.com/produk/123 harganya murah banget nggak sih", "id");
}

#[test]
fn long_text_is_examined_in_bounded_windows() {
    let sentence = "I am planning a long hiking trip through the mountains next summer with my friends. ";
    let long = sentence.repeat(2000); // ~170 kB
    let w = windows(&long);
    assert_eq!(w.len(), MAX_WINDOWS);
    for window in &w {
        assert!(window.chars().count() <= WINDOW_CHARS);
        assert!(!window.starts_with(' ') && !window.ends_with(' '));
    }
    assert_supported(&long, "en");

    // An unsupported language in a sampled window fails the whole text.
    let korean = "이번 주말에 친구들이랑 캠핑 가려고 하는데 준비물 알려줘. ".repeat(40);
    let mixed = format!("{}{}", sentence.repeat(40), korean);
    assert_not_supported(&mixed);

    // Thai without spaces is cut anywhere.
    let thai = "อยากเริ่มวิ่งตอนเช้าต้องเตรียมตัวยังไงบ้าง".repeat(100);
    assert_eq!(windows(&thai).len(), MAX_WINDOWS);
    assert_supported(&thai, "th");

    // Short text: one window, the text itself.
    assert_eq!(windows("hello there"), ["hello there"]);
}

#[test]
fn combine_windows() {
    use LanguageDecision::*;
    let s = |l, c| Supported { language: l, confidence: c, romanised: false };
    let too_short = Unidentified { reason: UnidentifiedReason::TooShort };
    assert_eq!(combine(&[s(Language::English, 0.9), too_short, s(Language::English, 0.7)]), s(Language::English, 0.7));
    assert_eq!(
        combine(&[s(Language::Tagalog, 0.9), s(Language::English, 0.8), s(Language::English, 0.95)]),
        s(Language::English, 0.8)
    );
    assert_eq!(
        combine(&[
            s(Language::English, 0.9),
            Unsupported { language: Language::Korean, confidence: 1.0 },
            s(Language::English, 0.9)
        ]),
        Unsupported { language: Language::Korean, confidence: 1.0 }
    );
    assert_eq!(
        combine(&[s(Language::English, 0.9), Unidentified { reason: UnidentifiedReason::NotConfident }]),
        Unidentified { reason: UnidentifiedReason::NotConfident }
    );
    assert_eq!(combine(&[too_short, too_short]), too_short);
}

#[test]
fn a_custom_set_makes_the_rest_decoys() {
    let gate = LanguageGate::new(&[Language::English, Language::Indonesian], 0.5).unwrap();
    // Malay is not supported here: it must not pass as Indonesian.
    let d = gate.decide("Nak cari kedai makan sedap kat Penang, korang ada cadangan tak?");
    assert!(matches!(d, LanguageDecision::Unsupported { language: Language::Malay, .. }), "{d:?}");
    assert!(matches!(
        gate.decide("Cho mình hỏi quán phở nào ngon ở quận 1 vậy?"),
        LanguageDecision::Unsupported { language: Language::Vietnamese, .. }
    ));
    assert!(matches!(
        gate.decide("แนะนำร้านส้มตำอร่อยๆแถวสีลมหน่อยครับ"),
        LanguageDecision::Unidentified { reason: UnidentifiedReason::ForeignScript }
            | LanguageDecision::Unsupported { .. }
    ));
}

/// The labelled tuning sets (the holdout sets are for `examples/measure.rs` only) and this crate's
/// unsupported and mixed lines: floors under the figures in the crate docs, and the known leaks.
#[test]
fn tuning_sets_and_unsupported_lines() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: std::path::PathBuf| -> Vec<(String, String)> {
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["lang"].as_str().unwrap().to_string(), v["text"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let (mut right, mut lines) = (0, 0);
    for &language in Language::DEFAULT_SUPPORTED {
        let rows =
            read(root.join(format!("../../fixtures/conversations/multilingual/{}.tuning.jsonl", language.code())));
        let ok = rows.iter().filter(|(_, text)| decide(text).supported_language() == Some(language)).count();
        assert!(ok * 100 >= rows.len() * 90, "{}: {ok}/{} right", language.code(), rows.len());
        right += ok;
        lines += rows.len();
    }
    assert!(right * 1000 >= lines * 975, "tuning: {right}/{lines} right");

    // Known leaks (crate docs, Known limits): short Galician lines without a distinctive word,
    // and a Swahili phrase opening a mostly English line.
    for file in ["unsupported", "mixed"] {
        for (lang, text) in read(root.join(format!("testdata/{file}.jsonl"))) {
            let d = decide(&text);
            let known = lang == "gl" || text.starts_with("Kesho tunaenda beach");
            assert!(!d.may_tag() || known, "{lang}: {text:?} leaked: {d:?}");
        }
    }

    // Regional languages lingua has no model for, read as Tagalog, Indonesian or Malay: the word
    // lists of `markers::unmodelled` and the own-words check of Tagalog, Malay and Indonesian
    // catch most (crate docs, Known limits). Bounds at what they catch today (before the lists:
    // 74 of 168 and 84 of 150 passed; with the lists alone, 18 and 68).
    for (file, at_most) in [("regional", 0), ("regional_check", 29)] {
        let rows = read(root.join(format!("testdata/{file}.jsonl")));
        let leaked = rows.iter().filter(|(_, text)| decide(text).may_tag()).count();
        assert!(leaked <= at_most, "{file}: {leaked} of {} passed as a supported language", rows.len());
    }
}

#[test]
fn a_country_hints_at_the_supported_languages_its_users_speak() {
    assert_eq!(languages_of_country("ID"), [Language::Indonesian]);
    assert_eq!(languages_of_country(" my "), [Language::Malay, Language::English], "trimmed, any case");
    assert_eq!(languages_of_country("MX")[0], Language::Spanish);
    assert_eq!(languages_of_country("US"), [Language::English, Language::Spanish]);
    // Excluded or unlisted countries give no hint (excluded users never get this far).
    assert!(languages_of_country("FR").is_empty() && languages_of_country("").is_empty());
    // Only supported languages are ever hinted.
    for country in ["ID", "MY", "SG", "PH", "MX", "BR", "IN", "SA", "EG", "VN", "TH", "JP", "TR", "US", "PK"] {
        for language in languages_of_country(country) {
            assert!(Language::DEFAULT_SUPPORTED.contains(language), "{country}: {language:?}");
        }
    }
}

#[test]
fn a_short_part_of_an_admitted_chat_reads_as_the_chat_and_a_foreign_part_does_not() {
    let whole = "Quiero acampar en la sierra este fin de semana, ¿qué tienda de campaña me recomiendas?\nok gracias";
    let admitted = GATE.admit(whole).unwrap();
    assert_eq!(admitted.language().code(), "es");
    let short = GATE.admit_part("ok gracias", &admitted).unwrap();
    assert_eq!((short.text(), short.language().code()), ("ok gracias", "es"));
    // A side that reads by itself keeps its own reading.
    let english = GATE.admit_part("I would take a three-season dome tent and a warm sleeping bag.", &admitted);
    assert_eq!(english.unwrap().language().code(), "en");
    // One in a language no text path covers is not admitted on the chat's word.
    let swahili = "Kesho tunaenda pwani na watoto wangu, nipendekezee hoteli nzuri karibu na bahari";
    assert!(GATE.admit_part(swahili, &admitted).is_err());
    assert!(GATE.admit_part("오늘 저녁에 친구들이랑 캠핑 가는데 텐트 좀 추천해 주세요", &admitted).is_err());
}

#[test]
fn a_supported_language_with_its_remainder_spread_over_decoys_is_accepted() {
    // es 0.57 with Catalan 0.11, Tagalog 0.09, Portuguese 0.06: Spanish share 0.73 < 0.8 before.
    assert_supported("¿Cómo hago pan de masa madre sin que me quede tan denso?", "es");
    // Catalan itself puts its weight on one decoy (ca 0.32): never passed as Spanish.
    assert_not_supported("Com puc fer pa de massa mare sense que quedi tan dens?");
}

#[test]
fn short_chat_where_lingua_is_spread_is_confirmed_by_its_own_words_or_letters() {
    // Lines of the training sets (fixtures/sensitivity/*.train.jsonl) the gate skipped before:
    // lingua leads with the language at 0.2-0.4, or ranks it fourth behind Swahili and Yoruba.
    assert_supported("CarPlay sem fio funciona bem no HB20 2023 ou vale comprar adaptador?", "pt"); // es 0.37, pt 0.34
                                                                                                    // Vietnamese typed without diacritics is told by its syllables and skipped (crate docs, step 2).
    assert_eq!(
        decide("co game dt nao choi chung voi nguoi yeu o xa dc ko, nhe nhe thoi"), // sw 0.21, vi 0.17
        LanguageDecision::Unidentified { reason: UnidentifiedReason::WithoutDiacritics }
    );
    assert_supported("Nhạc R&B êm kiểu Luther Vandross, Anita Baker cho bữa tiệc tối ở nhà", "vi"); // vi 0.43, yo 0.13
                                                                                                    // Spain's question mark settles Spanish against Portuguese look-alikes ("vale", "pro").
    assert_supported("¿Vale la pena la PS4 Pro o espero?", "es");
    // Portuguese by its words, not Spanish by its lead.
    assert_supported("Qual panela de pressão vale mais a pena?", "pt");
    // Catalan with a ç and one Romance article is not Portuguese (pt 0.47, ca 0.40).
    assert_not_supported("S'exilià a França.");
    // The decoys' own lines stay out.
    assert_not_supported("Mtoto wangu anapenda mpira wa miguu sana");
    assert_not_supported("Ẹ kú àárọ̀, ṣé dáadáa ni?");
    assert_not_supported("Com puc fer pa de massa mare sense que quedi tan dens?");
}

#[test]
fn hindi_is_not_read_as_marathi_nor_turkish_as_azerbaijani() {
    // Lines of the training sets the gate skipped before: lingua led with the decoy next door.
    assert_supported("गोल्डफ़िश के लिए कितना बड़ा एक्वेरियम चाहिए? बेटी ने ज़िद पकड़ ली है", "hi"); // mr 0.50, hi 0.50
    assert_supported("Union Bank of India का FD रेट अभी SBI से ज़्यादा है क्या?", "hi"); // hi 0.64, mr 0.36
    assert_supported("Kürk Mantolu Madonna'yı bitirdim, benzer havada bi roman önerir misin?", "tr"); // tr 0.79, az 0.19
                                                                                                      // Written for this test: the neighbours themselves stay out.
    assert_not_supported("मला उद्या पुण्याला जायचे आहे, कोणती बस चांगली आहे?");
    assert_not_supported("माझ्या मुलीसाठी चांगली शाळा कुठे आहे? आम्ही नवीन घरात आलो आहोत");
    assert_not_supported("Mən sabah Bakıya getmək istəyirəm, hansı qatar yaxşıdır?");
    // Azerbaijani typed without ə still has words Turkish does not use.
    assert_not_supported("Men sabah Bakiya getmek isteyirem, hansi qatar yaxsidir?");
}

#[test]
fn malay_indonesian_and_taglish_chat_is_confirmed_by_its_own_words() {
    // Lines of the training sets the gate skipped before (lingua spread over ms, id, tl, en).
    assert_supported("PUBG ke Free Fire, mana lagi ringan?", "ms");
    assert_supported("Cara setting router Indihome biar wifi ga lemot di lantai 2", "id");
    assert_supported("Playlist ng kanta na parang John Mayer at Norah Jones, pang-Sunday morning", "tl");
    assert_supported("Reggae bands sa Pinas bukod sa Brownman Revival? Para sa beach party namin sa La Union", "tl");
    // English alone with a name that looks Tagalog is not Taglish.
    assert_ne!(
        decide("Best hotels near Mall of Asia for a family of four?").supported_language(),
        Some(Language::Tagalog)
    );
}

#[test]
fn regional_languages_next_to_tagalog_and_indonesian_are_not_passed_off_as_them() {
    // Written for this test: lingua read each as Tagalog (0.69-0.95) or Malay/Indonesian.
    for text in [
        "Unsa may maayo nga cellphone nga barato, gusto ko mopalit para sa akong anak", // Cebuano
        "Ania ti nasayaat nga cellphone a nalaka, kayat ko ti gumatang para iti anak ko", // Ilocano
        "Lamun ikaw gusto magbakal sang cellphone, diin ang barato diri sa Iloilo?",    // Hiligaynon
        "Bli, tiang nak meli baju adat anggo ka pura, dija ngidang meli ane mudah?",    // Balinese
        "Ambo nio bali sipatu nan rancak untuak joging, ado saran?",                    // Minangkabau
    ] {
        assert_eq!(
            decide(text),
            LanguageDecision::Unidentified { reason: UnidentifiedReason::UnmodelledLanguage },
            "{text}"
        );
    }
}

#[test]
fn one_word_of_a_neighbour_and_none_of_the_language_own_is_the_neighbour() {
    // Written for this test (the first two) or from testdata/regional.jsonl: lingua reads each as
    // Tagalog (0.67-0.76) or Indonesian, with one or two words of the neighbour's list.
    for text in [
        "Pila ang presyo sa bag-o nga laptop? Kinahanglan ko para sa school", // Cebuano: kinahanglan
        "Ano an maupay nga regalo para ha akon nanay?",                       // Waray: maupay, akon
        "Mon entar ka Sumenep, panggonan se bagus e dimma?",                  // Madurese: dimma
    ] {
        assert_eq!(
            decide(text),
            LanguageDecision::Unidentified { reason: UnidentifiedReason::UnmodelledLanguage },
            "{text}"
        );
    }
    // A word of Tagalog's own ("yung", "ng") outweighs one of a neighbour's; a language's name, a
    // Tagalog homograph or a capitalised name is not a neighbour's word.
    assert_supported("Ano ang magandang regalo para sa nanay ko? Yung mura lang, kinahanglan daw", "tl");
    assert_supported("Bisaya ako sa Manila, paano mawala accent ko", "tl");
    assert_supported("Paano magpaalam sa amo para mag-day off?", "tl");
    assert_supported("Sikat na ba ang Sang-woo sa Pinas?", "tl");
    assert_supported(
        "Trik sulap kartu sederhana buat ngehibur bocah-bocah di ultah anakku, ada tutorial gampang?",
        "id",
    );
}

#[test]
fn vietnamese_without_diacritics_is_named_and_skipped() {
    // A line of the training sets lingua read as Swahili (0.53).
    assert_eq!(
        decide("tiktok cua minh tu nhien bi bop view, co phai bi khoa tuong tac khong"),
        LanguageDecision::Unidentified { reason: UnidentifiedReason::WithoutDiacritics }
    );
    // With its diacritics it is Vietnamese; other languages' short words do not make it.
    assert_supported("TikTok của mình tự nhiên bị bóp view, có phải bị khóa tương tác không?", "vi");
    assert_supported("can you suggest a tent for two, not too heavy?", "en");
    assert_supported("Ano ang magandang tent para sa dalawa, yung hindi mabigat?", "tl");
    assert_not_supported("Mtoto wangu anapenda mpira wa miguu sana");
}

#[test]
fn short_chat_lingua_is_unsure_of_is_confirmed_by_how_often_its_words_are_written() {
    // lingua spreads these over German, Dutch, French and Tagalog (en 0.3–0.5); every word but
    // the names is a common English, Portuguese, Malay or Tagalog word.
    for (text, code) in [
        ("snooker vs pool, which is easier to pick up for a total beginner?", "en"),
        ("visiting the Sagrada Família next week, which façade gets the best morning light for photos?", "en"),
        ("best nature documentaries since Planet Earth II?", "en"),
        ("Jogos de aventura point-and-click tipo Monkey Island pra rodar num PC fraco", "pt"),
        ("Laptop untuk video editing Premiere Pro, budget RM4k?", "ms"),
        ("Rainbow Six Siege, sinong operator ang madali para sa beginner na defender?", "tl"),
    ] {
        assert_supported(text, code);
    }
    // Swahili words are in no list (vocabulary.rs tests a decoy's words); romanised Hindi's own
    // words rule the rule out, though "ke", "ka", "ya", "do" are common Tagalog and English.
    assert_not_supported("Sasa nataka kununua simu mpya, which brand has the best camera?");
    assert!(!matches!(
        decide("Sunday league final ke liye team jersey ka order, Excel format bana do?"),
        LanguageDecision::Supported { language: Language::Tagalog, .. }
    ));
}

#[test]
fn japanese_with_latin_names_is_japanese() {
    // lingua reads these by their Latin words (ro 0.21, de 0.16; de 0.33, nl 0.23).
    assert_supported("NHK-FMのクラシック番組って聴き逃し配信ある？", "ja");
    assert_supported("Pixel BudsとAirPods Pro、Android使いならどっち？", "ja");
    // English with a Japanese word is not Japanese.
    assert_not_supported("Pixel Buds and AirPods Pro, which one for Android users? ありがとう");
    // Kana is never Chinese, nor is Hangul beside it Japanese.
    assert_not_supported("오늘 저녁 뭐 먹지? ラーメンが食べたい");
}
