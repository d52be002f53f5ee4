//! The classifier's labelled neighbours: its training chats as the text model's inner states
//! see them (averaged over tokens, centred, projected on their top principal directions,
//! normalised; `scripts/sensitive_neighbours.py` writes them). A segment's share of sensitive
//! chats among its nearest ones is a second opinion from frozen features, whose mistakes are
//! not the fine-tuned layers' mistakes; the two are added as log-odds
//! ([`Neighbours::combine`]).

use ndarray::{Array1, Array2, ArrayView1};

/// What the manifest's `[neighbours]` table says.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NeighboursManifest {
    pub file: String,
    pub sha256: String,
    /// How many of the nearest chats vote.
    pub k: usize,
    /// The softmax temperature over their similarities: the nearer, the heavier.
    pub tau: f32,
    /// The weight of the neighbours' log-odds beside the classifier's.
    pub weight: f32,
}

/// The neighbours, read and checked.
#[derive(Debug)]
pub(crate) struct Neighbours {
    mean: Array1<f32>,
    /// `[dimensions, input]`.
    projection: Array2<f32>,
    /// `[rows, dimensions]`, unit vectors (as stored: int8 times each row's scale).
    rows: Array2<f32>,
    sensitive: Vec<bool>,
    k: usize,
    tau: f32,
    weight: f32,
}

/// Log-odds are clipped here: a p of exactly 0 or 1 would make either opinion absolute.
const P_FLOOR: f32 = 1e-6;

fn logit(p: f32) -> f32 {
    let p = p.clamp(P_FLOOR, 1.0 - P_FLOOR);
    (p / (1.0 - p)).ln()
}

impl Neighbours {
    /// Parse `bytes` (the layout in `scripts/sensitive_neighbours.py`) for a classifier of
    /// `classes` classes over `input`-dimensional states.
    pub fn parse(bytes: &[u8], m: &NeighboursManifest, input: usize, classes: usize) -> Result<Neighbours, String> {
        if m.k == 0 || !(m.tau > 0.0 && m.tau.is_finite()) || !(m.weight >= 0.0 && m.weight.is_finite()) {
            return Err(format!(
                "k {} must be at least 1, tau {} and weight {} positive and finite",
                m.k, m.tau, m.weight
            ));
        }
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let piece = bytes.get(at..at + n).ok_or_else(|| format!("{} ends at byte {}", m.file, bytes.len()))?;
            at += n;
            Ok(piece)
        };
        if take(4)? != b"ATNB" {
            return Err(format!("{} is not a neighbours file", m.file));
        }
        let mut u32s = [0u32; 4];
        for v in u32s.iter_mut() {
            *v = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
        }
        let [format, rows, file_input, dims] = u32s.map(|v| v as usize);
        if format != 1 || file_input != input || dims == 0 || dims > input || rows < m.k {
            return Err(format!(
                "{}: format {format}, {rows} rows of {dims} from {file_input} dimensions (expected format 1, input {input}, at least k = {} rows)",
                m.file, m.k
            ));
        }
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
        };
        let mean = Array1::from(floats(take(4 * input)?));
        let projection =
            Array2::from_shape_vec((dims, input), floats(take(4 * dims * input)?)).map_err(|e| e.to_string())?;
        let mut values = Vec::with_capacity(rows * dims);
        let mut sensitive = Vec::with_capacity(rows);
        for row in 0..rows {
            let scale = f32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
            let q = take(dims)?;
            let class = take(1)?[0] as usize;
            if class >= classes || !(scale > 0.0 && scale.is_finite()) {
                return Err(format!("{}: row {row} has class {class} of {classes} and scale {scale}", m.file));
            }
            values.extend(q.iter().map(|&v| v as i8 as f32 * scale));
            sensitive.push(class != 0);
        }
        if at != bytes.len() {
            return Err(format!("{}: {} bytes after the last row", m.file, bytes.len() - at));
        }
        if mean.iter().chain(projection.iter()).any(|v| !v.is_finite()) {
            return Err(format!("{}: a mean or projection value is not finite", m.file));
        }
        if !sensitive.contains(&true) || !sensitive.contains(&false) {
            return Err(format!("{}: its rows need both ordinary and sensitive chats", m.file));
        }
        let rows = Array2::from_shape_vec((rows, dims), values).map_err(|e| e.to_string())?;
        Ok(Neighbours { mean, projection, rows, sensitive, k: m.k, tau: m.tau, weight: m.weight })
    }

    /// How many chats it holds, and how many of them are sensitive.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        (self.sensitive.len(), self.sensitive.iter().filter(|s| **s).count())
    }

    /// Each segment's share of sensitive chats among its `k` nearest, each weighing
    /// `exp(similarity / tau)`. `pooled` is `[segments, input]`: each segment's states averaged
    /// over its tokens.
    pub fn sensitive_share(&self, pooled: &Array2<f32>) -> Vec<f32> {
        let mut projected = (pooled - &self.mean).dot(&self.projection.t());
        for mut row in projected.rows_mut() {
            let norm = row.dot(&row).sqrt().max(1e-12);
            row /= norm;
        }
        let similarities = projected.dot(&self.rows.t());
        // One ranking buffer for all segments (a row is ~27,000 chats).
        let mut ranked = Vec::with_capacity(self.sensitive.len());
        similarities.rows().into_iter().map(|row| self.share(row, &mut ranked)).collect()
    }

    fn share(&self, similarities: ArrayView1<f32>, ranked: &mut Vec<(f32, bool)>) -> f32 {
        ranked.clear();
        ranked.extend(similarities.iter().copied().zip(self.sensitive.iter().copied()));
        let k = self.k.min(ranked.len());
        // The k most similar first (their order among themselves does not matter).
        ranked.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let top = &ranked[..k];
        let best = top.iter().map(|r| r.0).fold(f32::NEG_INFINITY, f32::max);
        let (mut sensitive, mut total) = (0f32, 0f32);
        for &(s, is_sensitive) in top {
            let w = ((s - best) / self.tau).exp();
            total += w;
            if is_sensitive {
                sensitive += w;
            }
        }
        sensitive / total
    }

    /// The classifier's p(sensitive) and the neighbours' sensitive share, added as log-odds
    /// (the share weighted): the p a segment is judged by.
    pub fn combine(&self, p_classifier: f32, share: f32) -> f32 {
        // A NaN would compare below any bar and pass: fail closed instead.
        if p_classifier.is_nan() || share.is_nan() {
            return 1.0;
        }
        let z = logit(p_classifier) + self.weight * logit(share);
        1.0 / (1.0 + (-z).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `rows` (class, 2-d unit vector) over 2-d states, identity projection, zero mean.
    fn file(rows: &[(u8, [f32; 2])]) -> Vec<u8> {
        let mut b = b"ATNB".to_vec();
        for v in [1u32, rows.len() as u32, 2, 2] {
            b.extend(v.to_le_bytes());
        }
        for v in [0f32, 0.0, 1.0, 0.0, 0.0, 1.0] {
            b.extend(v.to_le_bytes());
        }
        for (class, v) in rows {
            let scale = v.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            b.extend(scale.to_le_bytes());
            b.extend(v.iter().map(|x| (x / scale).round() as i8 as u8));
            b.push(*class);
        }
        b
    }

    fn manifest(k: usize, tau: f32, weight: f32) -> NeighboursManifest {
        NeighboursManifest { file: "n.bin".into(), sha256: String::new(), k, tau, weight }
    }

    #[test]
    fn the_share_is_the_nearest_chats_weighted_vote() {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        // Two sensitive chats near (1, 0), one ordinary at 45 degrees, one ordinary opposite.
        let bytes = file(&[(4, [1.0, 0.0]), (2, [1.0, 0.0]), (0, [s, s]), (0, [-1.0, 0.0])]);
        let n = Neighbours::parse(&bytes, &manifest(3, 0.1, 1.0), 2, 7).unwrap();
        let pooled = Array2::from_shape_vec((2, 2), vec![3.0, 0.0, -2.0, 0.0]).unwrap();
        let share = n.sensitive_share(&pooled);
        // Similarities 1, 1, 0.707: weights 1, 1, exp(-2.93); the opposite chat is not among the 3.
        let w = ((s - 1.0) / 0.1f32).exp();
        assert!((share[0] - 2.0 / (2.0 + w)).abs() < 1e-3, "{share:?}");
        // (-1, 0): the ordinary chat opposite is nearest (similarity 1), the two sensitive ones
        // furthest (-1), the 45-degree one between (-0.707).
        assert!(share[1] < 1e-6, "{share:?}");
        // Log-odds add: an even share leaves the classifier's p as it was.
        assert!((n.combine(0.2, 0.5) - 0.2).abs() < 1e-6);
        assert!(n.combine(0.2, 0.9) > 0.2 && n.combine(0.2, 0.1) < 0.2);
        // Weight 0: the neighbours say nothing.
        let off = Neighbours::parse(&bytes, &manifest(3, 0.1, 0.0), 2, 7).unwrap();
        assert!((off.combine(0.2, 0.99) - 0.2).abs() < 1e-6);
        // Not a number, from either side, drops rather than passes.
        assert_eq!(n.combine(f32::NAN, 0.1), 1.0);
        assert_eq!(n.combine(0.01, f32::NAN), 1.0);
        // A p of exactly 0 or 1 is clipped, not absolute.
        assert!(n.combine(0.0, 1.0) > 0.0 && n.combine(1.0, 0.0) < 1.0);
    }

    #[test]
    fn malformed_files_and_settings_are_refused() {
        let good = file(&[(1, [1.0, 0.0]), (0, [0.0, 1.0])]);
        assert!(Neighbours::parse(&good, &manifest(2, 0.1, 1.0), 2, 7).is_ok());
        // Truncated, trailing bytes, wrong magic, wrong input width, a class out of range.
        assert!(Neighbours::parse(&good[..good.len() - 1], &manifest(2, 0.1, 1.0), 2, 7).is_err());
        let mut long = good.clone();
        long.push(0);
        assert!(Neighbours::parse(&long, &manifest(2, 0.1, 1.0), 2, 7).is_err());
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(Neighbours::parse(&magic, &manifest(2, 0.1, 1.0), 2, 7).is_err());
        assert!(Neighbours::parse(&good, &manifest(2, 0.1, 1.0), 3, 7).is_err());
        assert!(Neighbours::parse(&file(&[(9, [1.0, 0.0]), (0, [0.0, 1.0])]), &manifest(2, 0.1, 1.0), 2, 7).is_err());
        // Only one kind of chat, more voters than rows, no temperature, a negative weight.
        assert!(Neighbours::parse(&file(&[(0, [1.0, 0.0]), (0, [0.0, 1.0])]), &manifest(2, 0.1, 1.0), 2, 7).is_err());
        assert!(Neighbours::parse(&good, &manifest(3, 0.1, 1.0), 2, 7).is_err());
        assert!(Neighbours::parse(&good, &manifest(2, 0.0, 1.0), 2, 7).is_err());
        assert!(Neighbours::parse(&good, &manifest(2, 0.1, -1.0), 2, 7).is_err());
        assert!(Neighbours::parse(&good, &manifest(2, 0.1, f32::NAN), 2, 7).is_err());
    }
}
