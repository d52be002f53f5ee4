//! The languages built into the gate, with their ISO 639-1 codes, English names and scripts.

use crate::script::Script;
use crate::LangError;

macro_rules! languages {
    ($( $variant:ident, $code:literal, $name:literal, [$($script:ident),+]; )*) => {
        /// A language the gate can name: one of the product's supported languages or a decoy (a
        /// language built in only so that text in it is recognised as unsupported).
        ///
        /// Which of them a [`LanguageGate`](crate::LanguageGate) accepts is its `supported` list;
        /// [`Language::DEFAULT_SUPPORTED`] is the product's default set.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Language {
            $( #[doc = $name] $variant, )*
        }

        impl Language {
            /// Every language built in, supported and decoy alike, in table order.
            pub const ALL: &'static [Language] = &[$(Language::$variant),*];

            /// The ISO 639-1 code ("en", "id", …).
            pub fn code(self) -> &'static str {
                match self { $(Language::$variant => $code,)* }
            }

            /// The English name ("English", "Indonesian", …).
            pub fn name(self) -> &'static str {
                match self { $(Language::$variant => $name,)* }
            }

            /// The scripts the language is written in (romanised Hindi and Arabizi aside: those
            /// are recognised by word lists, see the crate docs).
            pub fn scripts(self) -> &'static [Script] {
                match self { $(Language::$variant => &[$(Script::$script),+],)* }
            }

            pub(crate) fn to_lingua(self) -> lingua::Language {
                match self { $(Language::$variant => lingua::Language::$variant,)* }
            }

            pub(crate) fn from_lingua(language: lingua::Language) -> Option<Language> {
                match language {
                    $(lingua::Language::$variant => Some(Language::$variant),)*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    };
}

// Supported by default first (Language::DEFAULT_SUPPORTED), then the decoys. Each row needs the
// lingua feature of the same name in Cargo.toml.
languages! {
    English, "en", "English", [Latin];
    Indonesian, "id", "Indonesian", [Latin];
    Malay, "ms", "Malay", [Latin];
    Spanish, "es", "Spanish", [Latin];
    Portuguese, "pt", "Portuguese", [Latin];
    Hindi, "hi", "Hindi", [Devanagari];
    Arabic, "ar", "Arabic", [Arabic];
    Vietnamese, "vi", "Vietnamese", [Latin];
    Thai, "th", "Thai", [Thai];
    Tagalog, "tl", "Tagalog", [Latin];
    Japanese, "ja", "Japanese", [Kana, Han];
    Turkish, "tr", "Turkish", [Latin];
    // Decoys sharing a script with a supported language: without them their text would be forced
    // into Japanese, Arabic or Hindi.
    Chinese, "zh", "Chinese", [Han];
    Persian, "fa", "Persian", [Arabic];
    Urdu, "ur", "Urdu", [Arabic];
    Marathi, "mr", "Marathi", [Devanagari];
    // Decoys in Latin script.
    Catalan, "ca", "Catalan", [Latin];
    Italian, "it", "Italian", [Latin];
    French, "fr", "French", [Latin];
    German, "de", "German", [Latin];
    Dutch, "nl", "Dutch", [Latin];
    Polish, "pl", "Polish", [Latin];
    Romanian, "ro", "Romanian", [Latin];
    Azerbaijani, "az", "Azerbaijani", [Latin];
    Swahili, "sw", "Swahili", [Latin];
    Somali, "so", "Somali", [Latin];
    Yoruba, "yo", "Yoruba", [Latin];
    // Decoys in scripts of their own: the script rule keeps them out already; the models (small,
    // Russian aside) let the gate name them.
    Korean, "ko", "Korean", [Hangul];
    Russian, "ru", "Russian", [Cyrillic];
    Bengali, "bn", "Bengali", [Bengali];
    Tamil, "ta", "Tamil", [Tamil];
    Telugu, "te", "Telugu", [Telugu];
    Gujarati, "gu", "Gujarati", [Gujarati];
    Punjabi, "pa", "Punjabi", [Gurmukhi];
}

impl Language {
    /// The product's default set: en, id, ms, es, pt, hi, ar, vi, th, tl, ja, tr.
    pub const DEFAULT_SUPPORTED: &'static [Language] = &[
        Language::English,
        Language::Indonesian,
        Language::Malay,
        Language::Spanish,
        Language::Portuguese,
        Language::Hindi,
        Language::Arabic,
        Language::Vietnamese,
        Language::Thai,
        Language::Tagalog,
        Language::Japanese,
        Language::Turkish,
    ];

    /// The language with this ISO 639-1 code (case and surrounding spaces ignored).
    pub fn from_code(code: &str) -> Result<Language, LangError> {
        let wanted = code.trim().to_ascii_lowercase();
        Language::ALL
            .iter()
            .copied()
            .find(|l| l.code() == wanted)
            .ok_or_else(|| LangError::UnknownCode { code: code.to_string() })
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Language {
    type Err = LangError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Language::from_code(s)
    }
}

/// The supported languages most of a country's users speak, most likely first (ISO 3166-1
/// alpha-2, any case): a hint for speech, whose language Whisper detects unreliably on one
/// window. English is listed where it is an everyday second language of the market. Empty for a
/// country not listed (and for countries whose languages attune does not tag): no preference.
pub fn languages_of_country(country: &str) -> &'static [Language] {
    use Language::*;
    match country.trim().to_ascii_uppercase().as_str() {
        "ID" => &[Indonesian],
        "MY" | "BN" => &[Malay, English],
        "SG" => &[English, Malay],
        "PH" => &[Tagalog, English],
        "ES" | "MX" | "AR" | "CO" | "CL" | "PE" | "VE" | "EC" | "GT" | "CU" | "BO" | "DO" | "HN" | "PY" | "SV"
        | "NI" | "CR" | "PA" | "UY" | "PR" => &[Spanish],
        "BR" | "PT" | "AO" | "MZ" => &[Portuguese],
        "IN" => &[Hindi, English],
        "SA" | "AE" | "EG" | "QA" | "KW" | "BH" | "OM" | "JO" | "LB" | "IQ" | "MA" | "DZ" | "TN" | "LY" | "YE"
        | "SY" | "SD" | "PS" => &[Arabic],
        "VN" => &[Vietnamese],
        "TH" => &[Thai],
        "JP" => &[Japanese],
        "TR" => &[Turkish],
        "US" => &[English, Spanish],
        "CA" | "AU" | "NZ" | "ZA" | "NG" | "KE" | "GH" | "PK" => &[English],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &l in Language::ALL {
            assert!(seen.insert(l.code()), "{} twice", l.code());
            assert_eq!(Language::from_code(l.code()).unwrap(), l);
            assert_eq!(Language::from_code(&format!(" {} ", l.code().to_uppercase())).unwrap(), l);
            assert_eq!(Language::from_lingua(l.to_lingua()), Some(l));
            assert_eq!(l.code().len(), 2);
        }
        assert_eq!(Language::DEFAULT_SUPPORTED.len(), 12);
        assert_eq!(Language::Malay.name(), "Malay");
        assert_eq!(Language::Tagalog.code(), "tl");
        assert_eq!("ja".parse::<Language>().unwrap(), Language::Japanese);
    }

    #[test]
    fn unknown_codes_are_errors() {
        for code in ["", "xx", "eng", "sv", "jv", "e n"] {
            let err = Language::from_code(code).unwrap_err();
            assert!(matches!(err, LangError::UnknownCode { .. }), "{code}");
            assert!(err.to_string().contains("ISO 639-1"), "{err}");
        }
    }
}
