//! Binary operators with native histograms.
//!
//! The vector matching code in [`crate::eval`] works on float points, and stays that way so
//! float queries run at full speed. When a histogram takes part, its points are *boxed*: each
//! histogram goes into a table and its point carries a NaN whose payload is the table index.
//! The matching code moves those values around untouched, and the element operation
//! ([`Boxes::binop`]) recognises them and applies Prometheus's rules (`vectorElemBinop`):
//! histogram ± histogram, histogram × or ÷ float, float × histogram, `==`/`!=` between
//! histograms; any other mix drops the element with an "incompatible sample types" info.
//!
//! Invariant: boxing happens only inside one binary operation, and only indexes below the
//! table's length are read back as histograms, so a float NaN that happens to carry the
//! marker payload can never reach outside the table.

use std::sync::Arc;

use promql_parser::parser::token::{self as tok, TokenId};

use crate::eval::{elem_binop, Result, H, S};

/// High bits of a boxed histogram reference: a quiet NaN with a marker payload.
const MARK: u64 = 0x7ffc_b15e_0000_0000;
const MARK_MASK: u64 = 0xffff_ffff_0000_0000;

/// The histogram table of one binary operation, plus the annotations it produced.
#[derive(Default)]
pub(crate) struct Boxes {
    table: Vec<H>,
    /// `(is_warning, message without position)`.
    pub notes: Vec<(bool, String)>,
    /// Set when the operation is a histogram trim (`Some(true)` for `</`), evaluated in
    /// place of the `atan2` the query was rewritten to.
    pub trim: Option<bool>,
}

impl Boxes {
    fn put(&mut self, h: H) -> f64 {
        self.table.push(h);
        f64::from_bits(MARK | (self.table.len() as u64 - 1))
    }

    /// The histogram a boxed value refers to; `None` for plain floats.
    pub fn get(&self, v: f64) -> Option<&H> {
        let bits = v.to_bits();
        if bits & MARK_MASK != MARK {
            return None;
        }
        self.table.get((bits & !MARK_MASK) as usize)
    }

    /// Moves every series' histogram points into its float points, boxed.
    pub fn box_series(&mut self, v: Vec<S>) -> Vec<S> {
        v.into_iter()
            .map(|mut s| {
                if !s.hs.is_empty() {
                    let hs = std::mem::take(&mut s.hs);
                    for (t, h) in hs {
                        let b = self.put(h);
                        s.pts.push((t, b));
                    }
                    s.pts.sort_by_key(|p| p.0);
                }
                s
            })
            .collect()
    }

    /// Moves boxed points back into histogram points.
    pub fn unbox_series(&self, v: Vec<S>) -> Vec<S> {
        v.into_iter()
            .map(|mut s| {
                if s.pts.iter().any(|p| self.get(p.1).is_some()) {
                    let mut pts = Vec::with_capacity(s.pts.len());
                    for &(t, v) in &s.pts {
                        match self.get(v) {
                            Some(h) => s.hs.push((t, h.clone())),
                            None => pts.push((t, v)),
                        }
                    }
                    s.pts = pts;
                }
                s
            })
            .collect()
    }

    fn incompatible(&mut self, op: TokenId, l: &str, r: &str) {
        let name = match self.trim {
            Some(true) => "</",
            Some(false) => ">/",
            None => op_name(op),
        };
        self.notes.push((
            false,
            format!(
                "PromQL info: incompatible sample types encountered for binary operator \"{name}\": {l} {name} {r}"
            ),
        ));
    }

    /// `l op r` where either may be a boxed histogram: `Some((value, keep))` as
    /// [`elem_binop`] gives, or `None` when the element is dropped whatever the `bool`
    /// modifier says.
    pub fn binop(&mut self, op: TokenId, l: f64, r: f64) -> Result<Option<(f64, bool)>> {
        let (hl, hr) = (self.get(l).cloned(), self.get(r).cloned());
        if let Some(below) = self.trim {
            return Ok(match (hl, hr) {
                (Some(h), None) => Some((self.put(Arc::new(h.trim(r, below))), true)),
                (Some(_), Some(_)) => {
                    self.incompatible(op, "histogram", "histogram");
                    None
                }
                (None, Some(_)) => {
                    self.incompatible(op, "float", "histogram");
                    None
                }
                (None, None) => {
                    self.incompatible(op, "float", "float");
                    None
                }
            });
        }
        match (hl, hr) {
            (None, None) => elem_binop(op, l, r).map(Some),
            (None, Some(h)) => {
                if op == tok::T_MUL {
                    let mut x = (*h).clone();
                    x.mul(l);
                    x.compact();
                    return Ok(Some((self.put(Arc::new(x)), true)));
                }
                self.incompatible(op, "float", "histogram");
                Ok(None)
            }
            (Some(h), None) => {
                if op == tok::T_MUL || op == tok::T_DIV {
                    let mut x = (*h).clone();
                    if op == tok::T_MUL {
                        x.mul(r);
                    } else {
                        x.div(r);
                    }
                    x.compact();
                    return Ok(Some((self.put(Arc::new(x)), true)));
                }
                self.incompatible(op, "histogram", "float");
                Ok(None)
            }
            (Some(a), Some(b)) => match op {
                tok::T_ADD | tok::T_SUB => {
                    let mut x = (*a).clone();
                    let (res, what) = if op == tok::T_ADD {
                        (x.add(&b), "addition")
                    } else {
                        (x.sub(&b), "subtraction")
                    };
                    match res {
                        Ok(o) => {
                            if o.counter_reset_collision {
                                self.notes
                                    .push((true, crate::histfn::counter_reset_collision(what)));
                            }
                            if o.custom_buckets_reconciled {
                                self.notes.push((false, crate::histfn::reconciled(what)));
                            }
                        }
                        Err(_) => {
                            self.notes
                                .push((true, crate::histfn::mixed_exponential_custom("")));
                            return Ok(None);
                        }
                    }
                    x.compact();
                    Ok(Some((self.put(Arc::new(x)), true)))
                }
                tok::T_EQLC | tok::T_NEQ => {
                    let eq = crate::histfn::same_histogram(&a, &b);
                    Ok(Some((l, if op == tok::T_EQLC { eq } else { !eq })))
                }
                _ => {
                    self.incompatible(op, "histogram", "histogram");
                    Ok(None)
                }
            },
        }
    }
}

/// The operator as Prometheus spells it in annotations.
fn op_name(op: TokenId) -> &'static str {
    match op {
        tok::T_ADD => "+",
        tok::T_SUB => "-",
        tok::T_MUL => "*",
        tok::T_DIV => "/",
        tok::T_MOD => "%",
        tok::T_POW => "^",
        tok::T_ATAN2 => "atan2",
        tok::T_EQLC => "==",
        tok::T_NEQ => "!=",
        tok::T_GTR => ">",
        tok::T_LSS => "<",
        tok::T_GTE => ">=",
        tok::T_LTE => "<=",
        _ => "?",
    }
}
