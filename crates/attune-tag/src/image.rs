//! Image classes to a verdict: each ImageNet class maps to an Interest node, to nothing, or to
//! a special category (`data/imagenet-to-iab.tsv`, 1000 reviewed rows).

use crate::{ScoredTopic, TagError, Verdict};
use attune_taxonomy::{SensitiveCategory, Taxonomy};
use std::collections::BTreeMap;

const TABLE_TSV: &str = include_str!("../data/imagenet-to-iab.tsv");

/// What one class means for a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassTarget {
    Topic(u32),
    Nothing,
    Sensitive(SensitiveCategory),
}

/// Thresholds on class probabilities.
#[derive(Debug, Clone)]
pub struct ImageTagConfig {
    /// Classes below this probability are ignored altogether.
    pub class_floor: f32,
    /// A topic needs this much probability summed over the classes that point to it: several
    /// agreeing classes raise it, one weak class does not make it.
    pub topic_threshold: f32,
    pub max_topics: usize,
    /// Summed probability of the sensitive classes at which the image is dropped.
    pub sensitive_threshold: f32,
}

impl Default for ImageTagConfig {
    fn default() -> Self {
        ImageTagConfig { class_floor: 0.02, topic_threshold: 0.30, max_topics: 3, sensitive_threshold: 0.25 }
    }
}

/// Tags images from class probabilities.
pub struct ImageTagger {
    targets: Vec<ClassTarget>,
    config: ImageTagConfig,
}

/// How many rows of each kind the table has: (to a topic, to nothing, sensitive).
pub fn table_coverage() -> (usize, usize, usize) {
    let t = ImageTagger::new(ImageTagConfig::default()).expect("the embedded table is checked by tests");
    let topics = t.targets.iter().filter(|c| matches!(c, ClassTarget::Topic(_))).count();
    let nothing = t.targets.iter().filter(|c| matches!(c, ClassTarget::Nothing)).count();
    (topics, nothing, t.targets.len() - topics - nothing)
}

impl ImageTagger {
    pub fn new(config: ImageTagConfig) -> Result<ImageTagger, TagError> {
        let taxonomy = Taxonomy::get();
        let mut targets = Vec::with_capacity(1000);
        for (row, cols) in attune_taxonomy::data_rows(TABLE_TSV) {
            let bad = |message: String| TagError::Data { row, message };
            let index: usize = cols.first().and_then(|c| c.parse().ok()).ok_or_else(|| bad("bad index".into()))?;
            if index != targets.len() {
                return Err(bad(format!("class {index} out of order")));
            }
            let target = match cols.get(2).map(|s| s.trim()) {
                Some("none") => ClassTarget::Nothing,
                Some(s) if s.starts_with("sensitive:") => ClassTarget::Sensitive(
                    SensitiveCategory::parse(&s["sensitive:".len()..]).ok_or_else(|| bad(format!("unknown `{s}`")))?,
                ),
                Some(s) => {
                    let id: u32 = s.parse().map_err(|_| bad(format!("bad target `{s}`")))?;
                    // A class may only point at a node a profile may hold.
                    taxonomy.allowed(id).map_err(|e| bad(e.to_string()))?;
                    ClassTarget::Topic(id)
                }
                None => return Err(bad("no target".into())),
            };
            targets.push(target);
        }
        Ok(ImageTagger { targets, config })
    }

    pub fn target(&self, class: usize) -> Option<ClassTarget> {
        self.targets.get(class).copied()
    }

    pub fn version(&self) -> String {
        format!("imagetable.{}", crate::content_hash(&[TABLE_TSV.as_bytes(), format!("{:?}", self.config).as_bytes()]))
    }

    /// The probability summed per special category and per topic, over the classes at or above
    /// `class_floor`: what both the verdict and its margins are decided on.
    fn sums(&self, probabilities: &[f32]) -> (BTreeMap<SensitiveCategory, f32>, BTreeMap<u32, f32>) {
        let mut sensitive: BTreeMap<SensitiveCategory, f32> = BTreeMap::new();
        let mut topics: BTreeMap<u32, f32> = BTreeMap::new();
        for (class, &p) in probabilities.iter().enumerate() {
            if p < self.config.class_floor {
                continue;
            }
            match self.targets.get(class) {
                Some(ClassTarget::Topic(id)) => *topics.entry(*id).or_default() += p,
                Some(ClassTarget::Sensitive(cat)) => *sensitive.entry(*cat).or_default() += p,
                _ => {}
            }
        }
        (sensitive, topics)
    }

    pub fn tag(&self, probabilities: &[f32]) -> Verdict {
        let c = &self.config;
        let (sensitive, topics) = self.sums(probabilities);
        let total_sensitive: f32 = sensitive.values().sum();
        if total_sensitive >= c.sensitive_threshold {
            let category = sensitive.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(c, _)| *c).expect("non-empty");
            return Verdict::Sensitive { category, detector: crate::Detector::ImageClass };
        }
        let mut ranked: Vec<(u32, f32)> = topics.into_iter().filter(|(_, s)| *s >= c.topic_threshold).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let taxonomy = Taxonomy::get();
        Verdict::Topics(
            ranked
                .into_iter()
                .take(c.max_topics)
                .filter_map(|(id, score)| {
                    taxonomy.allowed(id).ok().map(|topic| ScoredTopic { topic, score: score.min(1.0) })
                })
                .collect(),
        )
    }

    /// How far the decisions behind [`ImageTagger::tag`]'s verdict were from going the other
    /// way, in probability: the sensitive classes' sum against its bar, each topic's summed
    /// probability against the topic bar. (A class within ~1e-5 of `class_floor` could also
    /// cross it on another CPU; at 0.02 a class adds little next to these margins.)
    pub fn margins(&self, probabilities: &[f32]) -> crate::Margins {
        let c = &self.config;
        let (sensitive, topics) = self.sums(probabilities);
        let sensitive: f32 = sensitive.values().sum();
        let mut topics: Vec<(u32, f32)> = topics.into_iter().map(|(id, s)| (id, s - c.topic_threshold)).collect();
        topics.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        crate::Margins {
            sensitive: sensitive - c.sensitive_threshold,
            lexicon: None,
            topics,
            message_topics: Vec::new(),
            max_topics: c.max_topics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(pairs: &[(usize, f32)]) -> Vec<f32> {
        let mut p = vec![0.0; 1000];
        for &(i, v) in pairs {
            p[i] = v;
        }
        p
    }

    #[test]
    fn table_has_every_class_and_known_rows() {
        let t = ImageTagger::new(ImageTagConfig::default()).unwrap();
        assert_eq!(t.targets.len(), 1000);
        assert!(matches!(t.target(497), Some(ClassTarget::Sensitive(SensitiveCategory::ReligiousBelief)))); // church
        assert!(matches!(t.target(668), Some(ClassTarget::Sensitive(SensitiveCategory::ReligiousBelief)))); // mosque
        assert!(matches!(t.target(720), Some(ClassTarget::Sensitive(SensitiveCategory::Health)))); // pill bottle
        assert!(matches!(t.target(845), Some(ClassTarget::Sensitive(SensitiveCategory::Health)))); // syringe
        assert!(matches!(t.target(967), Some(ClassTarget::Topic(_)))); // espresso
        let (topics, nothing, sensitive) = table_coverage();
        assert_eq!(topics + nothing + sensitive, 1000);
    }

    #[test]
    fn agreeing_classes_raise_a_topic_and_one_weak_class_does_not() {
        let t = ImageTagger::new(ImageTagConfig::default()).unwrap();
        // tiger cat, Egyptian cat, tabby: each weak alone, one topic together.
        let Verdict::Topics(ts) = t.tag(&probs(&[(282, 0.2), (285, 0.15), (281, 0.1)])) else { panic!() };
        assert_eq!(ts.len(), 1);
        assert!((ts[0].score - 0.45).abs() < 1e-6);
        let Verdict::Topics(ts) = t.tag(&probs(&[(282, 0.2)])) else { panic!() };
        assert!(ts.is_empty());
    }

    #[test]
    fn a_confident_sensitive_class_drops_the_image() {
        let t = ImageTagger::new(ImageTagConfig::default()).unwrap();
        // espresso 0.6 but a pill bottle 0.3: dropped whole.
        let v = t.tag(&probs(&[(967, 0.6), (720, 0.3)]));
        assert!(matches!(v, Verdict::Sensitive { category: SensitiveCategory::Health, .. }), "{v:?}");
        // A faint sensitive class does not.
        assert!(matches!(t.tag(&probs(&[(967, 0.9), (720, 0.03)])), Verdict::Topics(_)));
    }
}
