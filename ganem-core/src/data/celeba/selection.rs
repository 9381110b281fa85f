//! The faces of one attribute's experiment (App. B.3): every face of the attribute's rarer
//! value (up to a cap) and as many of the other, chosen so that the other 39 attributes stay
//! as pure as possible, then split into training and held-out faces.

use super::ATTRIBUTES;
use crate::error::{Error, Result};

/// Every `HELD_OUT_EVERY`-th chosen face of each value (in selection order) is held out of
/// training and scores the run: a fifth of each value.
pub const HELD_OUT_EVERY: usize = 5;

/// The faces chosen for one attribute, as indices into the data set.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeSelection {
    pub attribute: usize,
    /// Faces the run trains on, ascending.
    pub train: Vec<usize>,
    /// Faces held out for the error, ascending.
    pub held_out: Vec<usize>,
    /// Faces in the data set without and with the attribute.
    pub available: [usize; 2],
    /// Faces chosen of each value.
    pub per_value: usize,
    /// Mean over the other 39 attributes of the share of chosen faces that hold its more
    /// common value among them (1.0: every other attribute pure).
    pub purity: f64,
}

/// Chooses the faces for `attribute` from per-face attribute rows: all faces of its rarer
/// value (the first `cap_per_value` by purity when `cap_per_value` > 0) and as many of the
/// other value. "Pure" is read as close to the rarer value's typical face: each candidate is
/// ranked by how many of the other attributes differ from their majority value among the
/// rarer value's faces, ties by position in the file, so the selection is deterministic and
/// the same for every seed.
pub fn select_for_attribute(
    attributes: &[[bool; 40]],
    attribute: usize,
    cap_per_value: usize,
) -> Result<AttributeSelection> {
    let name = ATTRIBUTES.get(attribute).ok_or_else(|| {
        Error::Invalid(format!(
            "attribute {attribute} is out of range 0..{}",
            ATTRIBUTES.len() - 1
        ))
    })?;
    let by_value: [Vec<usize>; 2] = [false, true].map(|value| {
        (0..attributes.len())
            .filter(|&i| attributes[i][attribute] == value)
            .collect()
    });
    let available = [by_value[0].len(), by_value[1].len()];
    let rarer = if available[1] <= available[0] { 1 } else { 0 };
    let mut per_value = available[rarer];
    if cap_per_value > 0 {
        per_value = per_value.min(cap_per_value);
    }
    if per_value < HELD_OUT_EVERY {
        return Err(Error::Invalid(format!(
            "{name}: {} faces with and {} without it; at least {HELD_OUT_EVERY} of each are needed",
            available[1], available[0]
        )));
    }
    let typical: Vec<bool> = (0..ATTRIBUTES.len())
        .map(|j| {
            let holding = by_value[rarer]
                .iter()
                .filter(|&&i| attributes[i][j])
                .count();
            2 * holding > by_value[rarer].len()
        })
        .collect();
    let distance = |i: usize| {
        (0..ATTRIBUTES.len())
            .filter(|&j| j != attribute && attributes[i][j] != typical[j])
            .count()
    };
    let (mut train, mut held_out, mut chosen) = (Vec::new(), Vec::new(), Vec::new());
    for faces in &by_value {
        let mut ranked = faces.clone();
        ranked.sort_by_key(|&i| (distance(i), i));
        ranked.truncate(per_value);
        for (rank, &i) in ranked.iter().enumerate() {
            if rank % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 {
                held_out.push(i);
            } else {
                train.push(i);
            }
        }
        chosen.extend(ranked);
    }
    train.sort_unstable();
    held_out.sort_unstable();
    Ok(AttributeSelection {
        attribute,
        train,
        held_out,
        available,
        per_value,
        purity: purity(attributes, &chosen, attribute),
    })
}

/// Mean over the attributes other than `attribute` of the majority value's share among
/// `faces`.
pub fn purity(attributes: &[[bool; 40]], faces: &[usize], attribute: usize) -> f64 {
    let n = faces.len().max(1) as f64;
    let shares: Vec<f64> = (0..ATTRIBUTES.len())
        .filter(|&j| j != attribute)
        .map(|j| {
            let holding = faces.iter().filter(|&&i| attributes[i][j]).count() as f64;
            holding.max(n - holding) / n
        })
        .collect();
    shares.iter().sum::<f64>() / shares.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 faces with attribute 0 (all also holding attribute 1) and 60 without it, of which
    /// those at even positions hold attribute 1 and every third holds attribute 2.
    fn rows() -> Vec<[bool; 40]> {
        let mut rows = Vec::new();
        for i in 0..80 {
            let mut row = [false; 40];
            row[0] = i < 20;
            row[1] = i < 20 || i % 2 == 0;
            row[2] = i >= 20 && i % 3 == 0;
            rows.push(row);
        }
        rows
    }

    #[test]
    fn all_of_the_rarer_value_and_the_purest_of_the_other() {
        let rows = rows();
        let s = select_for_attribute(&rows, 0, 0).unwrap();
        assert_eq!((s.available, s.per_value), ([60, 20], 20));
        assert_eq!(s.train.len() + s.held_out.len(), 40);
        assert_eq!(s.held_out.len(), 8, "a fifth of each value");
        let chosen: Vec<usize> = s.train.iter().chain(&s.held_out).copied().collect();
        assert!((0..20).all(|i| chosen.contains(&i)), "every positive face");
        // The negatives chosen hold attribute 1 like every positive, and not attribute 2.
        for &i in chosen.iter().filter(|&&i| i >= 20) {
            assert!(rows[i][1] && !rows[i][2], "face {i}");
        }
        assert_eq!(s.purity, 1.0);
        let first_by_index: Vec<usize> = (0..40).collect();
        assert!(purity(&rows, &first_by_index, 0) < s.purity);
        assert!(s.train.iter().all(|i| !s.held_out.contains(i)));
        // Deterministic, and the cap keeps the purest.
        assert_eq!(select_for_attribute(&rows, 0, 0).unwrap(), s);
        let capped = select_for_attribute(&rows, 0, 10).unwrap();
        assert_eq!(capped.train.len() + capped.held_out.len(), 20);
    }

    #[test]
    fn too_few_faces_or_an_unknown_attribute_are_named() {
        let rows = rows();
        let err = select_for_attribute(&rows[16..], 0, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("5_o_Clock_Shadow") && err.contains("4 faces with"),
            "{err}"
        );
        assert!(select_for_attribute(&rows, 40, 0).is_err());
    }
}
