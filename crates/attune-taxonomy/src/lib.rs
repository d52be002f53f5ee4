//! The Interest branch of the IAB Tech Lab Audience Taxonomy 1.1 (CC BY 3.0, see
//! `data/NOTICE.md`), with attune's own sensitivity overlay on top and a description of each node
//! written for the text model.
//!
//! [`AllowedTopic`] is the only thing a profile entry can hold, and it can only be made by
//! [`Taxonomy::allowed`], which refuses every node the overlay marks (and every node under one).
//! So a sensitive topic cannot be written to a profile, whatever a model says.
//!
//! ```compile_fail
//! // Outside this crate an AllowedTopic cannot be built by hand:
//! let forged = attune_taxonomy::AllowedTopic { node: todo!() };
//! ```

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

const AUDIENCE_TSV: &str = include_str!("../data/audience-taxonomy-1.1.tsv");
const DESCRIPTIONS_TSV: &str = include_str!("../data/interest-descriptions.tsv");
const SENSITIVE_TSV: &str = include_str!("../data/sensitive-nodes.tsv");

/// The id OpenRTB's `segtax` gives the IAB Audience Taxonomy 1.1.
pub const OPENRTB_SEGTAX: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    #[error("{0} is not a node of the Interest branch")]
    UnknownNode(u32),
    #[error("node {id} ({name}) is sensitive ({category}) and can never be a profile topic")]
    Sensitive { id: u32, name: String, category: SensitiveCategory },
    #[error("node {0} is the root of the branch, not a topic")]
    Root(u32),
}

/// The special categories of personal data (GDPR art. 9) that attune never profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SensitiveCategory {
    PoliticalOpinion,
    ReligiousBelief,
    TradeUnion,
    Health,
    SexLife,
    EthnicOrigin,
}

impl SensitiveCategory {
    pub const ALL: [SensitiveCategory; 6] = [
        SensitiveCategory::PoliticalOpinion,
        SensitiveCategory::ReligiousBelief,
        SensitiveCategory::TradeUnion,
        SensitiveCategory::Health,
        SensitiveCategory::SexLife,
        SensitiveCategory::EthnicOrigin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SensitiveCategory::PoliticalOpinion => "political_opinion",
            SensitiveCategory::ReligiousBelief => "religious_belief",
            SensitiveCategory::TradeUnion => "trade_union",
            SensitiveCategory::Health => "health",
            SensitiveCategory::SexLife => "sex_life",
            SensitiveCategory::EthnicOrigin => "ethnic_origin",
        }
    }

    pub fn parse(s: &str) -> Option<SensitiveCategory> {
        SensitiveCategory::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for SensitiveCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node of the Interest branch.
#[derive(Debug)]
pub struct Node {
    /// The IAB Unique ID (206–760 for Interest).
    pub id: u32,
    pub parent: Option<u32>,
    /// The last tier's name, e.g. `Hiking`.
    pub name: String,
    /// The tiers below `Interest`, e.g. `["Sports", "Hiking"]`.
    pub path: Vec<String>,
    /// What someone interested in this talks about, for the text model.
    pub description: String,
    /// `Some` when the node, or one above it, is sensitive.
    pub sensitive: Option<SensitiveCategory>,
}

/// The Interest branch, loaded once from the copies embedded in the binary.
pub struct Taxonomy {
    nodes: Vec<Node>,
    index: HashMap<u32, usize>,
    version: String,
}

/// A node that may appear in a profile. Only [`Taxonomy::allowed`] makes one.
#[derive(Clone, Copy)]
pub struct AllowedTopic {
    node: &'static Node,
}

impl AllowedTopic {
    pub fn id(&self) -> u32 {
        self.node.id
    }
    pub fn name(&self) -> &'static str {
        &self.node.name
    }
    pub fn node(&self) -> &'static Node {
        self.node
    }
}

impl fmt::Debug for AllowedTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllowedTopic({} {})", self.node.id, self.node.name)
    }
}

impl PartialEq for AllowedTopic {
    fn eq(&self, other: &Self) -> bool {
        self.node.id == other.node.id
    }
}
impl Eq for AllowedTopic {}
impl std::hash::Hash for AllowedTopic {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.node.id.hash(state)
    }
}

/// The Unique ID of the branch's root, `Interest` itself: never a topic.
pub const INTEREST_ROOT: u32 = 206;

impl Taxonomy {
    /// The embedded taxonomy (parsed on first use).
    pub fn get() -> &'static Taxonomy {
        static TAXONOMY: OnceLock<Taxonomy> = OnceLock::new();
        TAXONOMY.get_or_init(|| Taxonomy::parse().expect("the embedded taxonomy files are checked by tests"))
    }

    fn parse() -> Result<Taxonomy, String> {
        let descriptions: HashMap<u32, &str> = data_rows(DESCRIPTIONS_TSV)
            .map(|(_, cols)| cols)
            .map(|cols| Ok((num(cols.first())?, *cols.get(1).ok_or("description missing")?)))
            .collect::<Result<_, String>>()?;
        let mut marked: HashMap<u32, SensitiveCategory> = HashMap::new();
        for (_, cols) in data_rows(SENSITIVE_TSV) {
            let id = num(cols.first())?;
            let cat = cols.get(1).and_then(|c| SensitiveCategory::parse(c.trim()));
            marked.insert(id, cat.ok_or_else(|| format!("sensitive node {id}: unknown category"))?);
        }
        let mut nodes = Vec::new();
        let mut index = HashMap::new();
        for (_, cols) in data_rows(AUDIENCE_TSV) {
            if cols.get(4).map(|s| s.trim()) != Some("Interest") {
                continue;
            }
            let id = num(cols.get(1))?;
            let parent = cols.get(2).and_then(|p| p.trim().parse().ok());
            let path: Vec<String> = cols[5..cols.len().min(10)]
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let name = path.last().cloned().unwrap_or_else(|| "Interest".to_string());
            let description = descriptions.get(&id).ok_or_else(|| format!("node {id} has no description"))?.to_string();
            index.insert(id, nodes.len());
            nodes.push(Node { id, parent, name, path, description, sensitive: marked.get(&id).copied() });
        }
        // A node under a sensitive node is sensitive too (fail closed). Parents precede children.
        for i in 0..nodes.len() {
            if nodes[i].sensitive.is_none() {
                if let Some(p) = nodes[i].parent.and_then(|p| index.get(&p)) {
                    nodes[i].sensitive = nodes[*p].sensitive;
                }
            }
        }
        let mut h = Sha256::new();
        h.update(DESCRIPTIONS_TSV.as_bytes());
        h.update(SENSITIVE_TSV.as_bytes());
        let digest = h.finalize();
        let version =
            format!("iab-audience-1.1+attune.{:02x}{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2], digest[3]);
        Ok(Taxonomy { nodes, index, version })
    }

    /// `iab-audience-1.1+attune.<hash of descriptions and overlay>`: recorded in every profile.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: u32) -> Option<&Node> {
        self.index.get(&id).map(|&i| &self.nodes[i])
    }

    /// The gate for profile topics: `id` must be a non-root, non-sensitive Interest node.
    pub fn allowed(&'static self, id: u32) -> Result<AllowedTopic, TaxonomyError> {
        let node = self.node(id).ok_or(TaxonomyError::UnknownNode(id))?;
        if id == INTEREST_ROOT {
            return Err(TaxonomyError::Root(id));
        }
        if let Some(category) = node.sensitive {
            return Err(TaxonomyError::Sensitive { id, name: node.name.clone(), category });
        }
        Ok(AllowedTopic { node })
    }
}

/// The rows of one of attune's TSV data files (the taxonomy's, the tagger's tables): the header
/// line skipped, blank lines and `#` comments left out, a Windows `\r` trimmed; each row's columns
/// with its 1-based line number, for messages. The one TSV reader of the workspace.
pub fn data_rows(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .skip(1)
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(row, l)| (row, l.split('\t').collect()))
}

fn num(col: Option<&&str>) -> Result<u32, String> {
    let s = col.ok_or("missing id")?;
    s.trim().parse().map_err(|_| format!("bad id `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_load_with_every_interest_node_described() {
        let t = Taxonomy::get();
        assert_eq!(t.nodes().len(), 497);
        assert!(t.nodes().iter().all(|n| n.description.split_whitespace().count() >= 5), "short description");
        assert_eq!(t.node(206).unwrap().name, "Interest");
        assert!(t.version().starts_with("iab-audience-1.1+attune."));
    }

    #[test]
    fn sensitive_nodes_and_their_children_are_refused() {
        let t = Taxonomy::get();
        // The nodes the issue names: health services, medical health, pharmaceuticals, politics.
        for (id, cat) in [
            (381, SensitiveCategory::Health),
            (466, SensitiveCategory::Health),
            (550, SensitiveCategory::Health),
            (529, SensitiveCategory::PoliticalOpinion),
        ] {
            match t.allowed(id) {
                Err(TaxonomyError::Sensitive { category, .. }) => assert_eq!(category, cat, "{id}"),
                other => panic!("{id} allowed: {other:?}"),
            }
        }
        // Every child of a sensitive node is sensitive.
        for n in t.nodes() {
            if let Some(p) = n.parent.and_then(|p| t.node(p)) {
                if p.sensitive.is_some() {
                    assert!(n.sensitive.is_some(), "{} under {}", n.name, p.name);
                }
            }
        }
        // Religious music is marked wherever it sits.
        let religious: Vec<_> = t.nodes().iter().filter(|n| n.name.to_lowercase().contains("religious")).collect();
        assert!(!religious.is_empty());
        assert!(religious.iter().all(|n| n.sensitive.is_some()));
    }

    #[test]
    fn ordinary_nodes_are_allowed_and_root_and_unknown_are_not() {
        let t = Taxonomy::get();
        let camping = t.nodes().iter().find(|n| n.name == "Camping").expect("camping node");
        assert_eq!(t.allowed(camping.id).unwrap().name(), "Camping");
        assert!(matches!(t.allowed(INTEREST_ROOT), Err(TaxonomyError::Root(_))));
        assert!(matches!(t.allowed(5), Err(TaxonomyError::UnknownNode(5))));
        assert!(matches!(t.allowed(99_999), Err(TaxonomyError::UnknownNode(_))));
    }
}
