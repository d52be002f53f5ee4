//! What every sentence encoder shares: the capability trait the tagger and the pipeline see,
//! and the batching and pooling of transformer outputs that the encoder crates have in common.

use crate::{run_in_batches_by_size, InferError, Model};
use ndarray::ArrayViewD;

/// A text-embedding model: text in, a unit-length vector out.
///
/// Items (chats, transcripts) are embedded with [`Model::run_batch`]; the texts they are compared
/// with (topic and category descriptions) with [`TextEmbedder::embed_passages`], which a model
/// trained with asymmetric prefixes (E5's "query: " / "passage: ") embeds differently.
pub trait TextEmbedder: Model<Input = String, Output = Vec<f32>> {
    /// The vectors' length.
    fn dimensions(&self) -> usize;

    /// Embeddings of reference texts; by default the same as items.
    fn embed_passages(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, InferError> {
        run_in_batches_by_size(self, texts, String::len)
    }

    /// Whether the graph offers the inner layer output `name` (see [`TokenStates`]).
    fn has_inner_output(&self, _name: &str) -> bool {
        false
    }

    /// Items as [`Model::run_batch`] embeds them, each with its token states at the inner layer
    /// output `inner`, from the same model call.
    fn run_batch_with_states(
        &mut self,
        _texts: &[String],
        inner: &str,
    ) -> Result<Vec<(Vec<f32>, TokenStates)>, InferError> {
        Err(InferError::Config(format!("{} has no inner output `{inner}`", self.id())))
    }

    /// The token states at `inner` alone, for segments whose sentence vector nobody reads. A
    /// model with a graph that stops at that layer runs only the layers below it; by default,
    /// [`TextEmbedder::run_batch_with_states`] with the vectors dropped. Either way the states
    /// are the same.
    fn run_batch_states_only(&mut self, texts: &[String], inner: &str) -> Result<Vec<TokenStates>, InferError> {
        Ok(self.run_batch_with_states(texts, inner)?.into_iter().map(|(_, s)| s).collect())
    }
}

/// One text's token states at an inner layer of its encoder (its own tokens only, no padding),
/// for a classifier that runs the encoder's top layers fine-tuned for its own task: the text is
/// encoded once for both the sentence vector and the classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenStates {
    pub tokens: usize,
    pub dimensions: usize,
    /// Row-major `[tokens][dimensions]`.
    pub values: Vec<f32>,
    /// Each token's byte range in the text as the caller gave it; `None` for what the model
    /// adds (the start and end markers, a prefix such as E5's "query: "). Empty when the
    /// encoder does not say.
    pub offsets: Vec<Option<(usize, usize)>>,
}

impl TokenStates {
    /// Rows `row` of a `[rows, seq, dimensions]` output, its first `tokens` positions (right
    /// padding is dropped), with each token's byte range in the caller's text (`offsets`, one
    /// per token, or empty).
    pub fn from_output(
        hidden: &ArrayViewD<f32>,
        row: usize,
        tokens: usize,
        offsets: Vec<Option<(usize, usize)>>,
    ) -> Result<TokenStates, String> {
        let shape = hidden.shape();
        if shape.len() != 3 || row >= shape[0] || tokens > shape[1] {
            return Err(format!("inner output of shape {shape:?} has no row {row} of {tokens} tokens"));
        }
        if !offsets.is_empty() && offsets.len() != tokens {
            return Err(format!("{} token offsets for {tokens} tokens", offsets.len()));
        }
        // One slice of the row (not element by element: dynamic-rank indexing in a loop over
        // every token state of every segment is a hot loop).
        let values = hidden.slice(ndarray::s![row, ..tokens, ..]).iter().copied().collect();
        Ok(TokenStates { tokens, dimensions: shape[2], values, offsets })
    }

    /// A part of the text (bytes `range` of it) read in place: the rows of the tokens from the
    /// first to the last that overlap it, after the rows the model added before the text (the
    /// start marker, a prefix) and before those it added after (the end marker), in their
    /// order. The part's states are those of the whole text's pass, so it is read in its
    /// context, at no encoder cost of its own. `None` when no token of the text overlaps
    /// `range` (a part cut off by the model's length limit) or the offsets are not known.
    pub fn in_place(&self, range: std::ops::Range<usize>) -> Option<TokenStates> {
        if self.offsets.len() != self.tokens {
            return None;
        }
        let overlaps =
            |o: &Option<(usize, usize)>| matches!(o, Some((a, b)) if b > a && *a < range.end && *b > range.start);
        let first = self.offsets.iter().position(overlaps)?;
        let last = self.offsets.iter().rposition(overlaps)?;
        let own = |o: &Option<(usize, usize)>| o.is_some();
        let before = (0..first).filter(|&i| !own(&self.offsets[i]));
        let after = (last + 1..self.tokens).filter(|&i| !own(&self.offsets[i]));
        let rows: Vec<usize> = before.chain(first..=last).chain(after).collect();
        let d = self.dimensions;
        let mut values = Vec::with_capacity(rows.len() * d);
        for &r in &rows {
            values.extend_from_slice(&self.values[r * d..(r + 1) * d]);
        }
        let offsets = rows.iter().map(|&r| self.offsets[r]).collect();
        Some(TokenStates { tokens: rows.len(), dimensions: d, values, offsets })
    }
}

/// Tokens one session call may hold, padding included (rows × its longest text): 8 texts of 256
/// tokens, 32 chat messages of 64. This bounds the memory a call takes, whatever the texts, so a
/// long run never meets a larger call than a short one did.
pub const MAX_CALL_TOKENS: usize = 2048;

/// Splits `sorted` (ascending by `tokens`) into runs whose rows × longest stays within `budget`;
/// an item over the budget alone still gets its own call.
pub fn calls_within(sorted: &[usize], tokens: impl Fn(usize) -> usize, budget: usize) -> Vec<&[usize]> {
    let mut calls = Vec::new();
    let mut start = 0;
    for (k, &i) in sorted.iter().enumerate() {
        // Ascending, so this item is the longest of the call so far.
        if k > start && (k + 1 - start) * tokens(i).max(1) > budget {
            calls.push(&sorted[start..k]);
            start = k;
        }
    }
    if start < sorted.len() {
        calls.push(&sorted[start..]);
    }
    calls
}

/// Runs `call` on the items shortest first (by `tokens`), in calls whose rows × longest stays
/// within [`MAX_CALL_TOKENS`] ([`calls_within`]); one output per item, in the items' order. The
/// shared loop of the text encoders, each of which pads a call to its own longest.
pub fn in_token_calls<T>(
    tokens: &[usize],
    mut call: impl FnMut(&[usize]) -> Result<Vec<T>, InferError>,
) -> Result<Vec<T>, InferError> {
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| tokens[i]);
    let mut out: Vec<Option<T>> = (0..tokens.len()).map(|_| None).collect();
    for rows in calls_within(&order, |i| tokens[i], MAX_CALL_TOKENS) {
        for (&i, v) in rows.iter().zip(call(rows)?) {
            out[i] = Some(v);
        }
    }
    Ok(out.into_iter().map(|v| v.expect("every item is in one call")).collect())
}

/// The mean of each row's token states where `mask` is set, scaled to unit length: the
/// sentence-transformers pooling both MiniLM and E5 were trained with. `hidden` is
/// [rows, tokens, dimensions]; `mask` is row-major [rows, tokens].
pub fn mean_pool_unit(hidden: &ArrayViewD<f32>, mask: &[i64], dimensions: usize) -> Result<Vec<Vec<f32>>, String> {
    let shape = hidden.shape();
    if shape.len() != 3 || shape[2] != dimensions || shape[0] * shape[1] != mask.len() {
        return Err(format!("unexpected output shape {shape:?} for {} mask values", mask.len()));
    }
    let (rows, seq) = (shape[0], shape[1]);
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        let mut v = vec![0f32; dimensions];
        let mut count = 0f32;
        for col in 0..seq {
            if mask[row * seq + col] == 0 {
                continue;
            }
            count += 1.0;
            for (d, x) in v.iter_mut().enumerate() {
                *x += hidden[[row, col, d]];
            }
        }
        let count = count.max(1.0);
        v.iter_mut().for_each(|x| *x /= count);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_stay_within_the_token_budget() {
        let tokens = [3, 5, 5, 8, 20, 40, 300];
        let order: Vec<usize> = (0..tokens.len()).collect();
        let calls = calls_within(&order, |i| tokens[i], 40);
        let flat: Vec<usize> = calls.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(flat, order, "every item once, in order");
        for call in &calls {
            let longest = call.iter().map(|&i| tokens[i]).max().unwrap();
            assert!(call.len() == 1 || call.len() * longest <= 40, "{call:?}");
        }
        // The over-budget item runs alone; short ones share a call.
        assert_eq!(calls.last().unwrap(), &[6]);
        assert_eq!(calls[0], &[0, 1, 2, 3]);
        assert!(calls_within(&[], |_| 1, 40).is_empty());
    }

    #[test]
    fn pooling_skips_masked_tokens_and_gives_unit_vectors() {
        // One row, three tokens, two dimensions; the last token is padding.
        let hidden = ndarray::arr3(&[[[1.0f32, 0.0], [3.0, 4.0], [100.0, 100.0]]]).into_dyn();
        let v = mean_pool_unit(&hidden.view(), &[1, 1, 0], 2).unwrap();
        // Mean (2, 2) → unit (0.707, 0.707).
        assert!((v[0][0] - 0.70710677).abs() < 1e-6 && (v[0][1] - 0.70710677).abs() < 1e-6, "{v:?}");
        assert!(mean_pool_unit(&hidden.view(), &[1, 1], 2).is_err());
    }

    #[test]
    fn token_states_keep_a_rows_own_tokens() {
        let hidden =
            ndarray::arr3(&[[[1.0f32, 2.0], [3.0, 4.0], [9.0, 9.0]], [[5.0, 6.0], [9.0, 9.0], [9.0, 9.0]]]).into_dyn();
        let a = TokenStates::from_output(&hidden.view(), 0, 2, vec![]).unwrap();
        assert_eq!(a, TokenStates { tokens: 2, dimensions: 2, values: vec![1.0, 2.0, 3.0, 4.0], offsets: vec![] });
        let b = TokenStates::from_output(&hidden.view(), 1, 1, vec![None]).unwrap();
        assert_eq!(b.values, vec![5.0, 6.0]);
        assert!(TokenStates::from_output(&hidden.view(), 2, 1, vec![]).is_err());
        assert!(TokenStates::from_output(&hidden.view(), 0, 4, vec![]).is_err());
        assert!(TokenStates::from_output(&hidden.view(), 0, 2, vec![None]).is_err(), "an offset per token");
    }

    #[test]
    fn a_part_read_in_place_keeps_the_markers_and_its_own_rows() {
        // <s> "query:" | "I" "like" "tents" "," "my" "knee" "hurts" | </s>, one dimension: the
        // row number. The text is "I like tents, my knee hurts".
        let offsets = vec![
            None,
            None,
            Some((0, 1)),
            Some((1, 6)),
            Some((6, 12)),
            Some((12, 13)),
            Some((13, 16)),
            Some((16, 21)),
            Some((21, 27)),
            None,
        ];
        let s = TokenStates { tokens: 10, dimensions: 1, values: (0..10).map(|v| v as f32).collect(), offsets };
        let knee = s.in_place(14..27).unwrap();
        assert_eq!(knee.values, vec![0.0, 1.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(knee.tokens, 6);
        let tents = s.in_place(0..12).unwrap();
        assert_eq!(tents.values, vec![0.0, 1.0, 2.0, 3.0, 4.0, 9.0]);
        // Nothing of the text there (cut off by the length limit), or offsets unknown.
        assert!(s.in_place(40..50).is_none());
        assert!(TokenStates { offsets: vec![], ..s.clone() }.in_place(0..5).is_none());
    }
}
