//! Choosing the time from several sources: the intersection (selection), cluster and combine
//! algorithms of RFC 5905 §11.2, producing the tally codes `ntpq -p` shows.
//!
//! Each fit source offers a correctness interval `offset ± root distance`. The intersection
//! algorithm finds the smallest interval that contains the point where most of those
//! intervals agree; sources whose intervals miss it are falsetickers (`x`). The cluster
//! algorithm then drops the survivors that disagree most with the rest (`-`) while that
//! improves the group, and combine averages the remaining ones weighted by the inverse of their
//! root distance. The best survivor — the `prefer` source or the current system peer when they
//! survive — is the system peer (`*`); the rest are candidates (`+`) or backups (`#`).

/// Largest root distance (RFC 5905 MAXDIST is 1 s; ntpd's `tos maxdist` default is 1.5 s), used
/// to rank by stratum first in the cluster metric.
pub const MAX_DISTANCE: f64 = 1.5;

/// One fit source offered to selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// θ, seconds.
    pub offset: f64,
    /// λ: root distance (half-width of the correctness interval), seconds, ≥ `mindist`.
    pub root_distance: f64,
    /// The source's stratum.
    pub stratum: u8,
    /// ψ: the source's jitter, seconds.
    pub jitter: f64,
    /// `prefer`.
    pub prefer: bool,
    /// `true`: always survives selection and clustering.
    pub truechimer: bool,
    /// Whether it was the system peer before this round (avoids needless clock-hopping).
    pub was_system_peer: bool,
}

/// How the configuration and the previous round treat one source in selection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// `noselect`: polled and shown, never offered to selection.
    pub noselect: bool,
    /// `prefer`.
    pub prefer: bool,
    /// `true`: always survives selection and clustering.
    pub truechimer: bool,
    /// Whether it was the system peer before this round.
    pub was_system_peer: bool,
}

/// What selection decided about one source; the character is ntpq's tally code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tally {
    /// ` `: not fit to be selected (unreachable, unsynchronised, too far, noselect).
    Reject,
    /// `x`: its interval misses the intersection.
    Falseticker,
    /// `.`: excess (not used by ntpd any more).
    Excess,
    /// `-`: discarded by the cluster algorithm.
    Outlier,
    /// `+`: survivor, combined into the system offset.
    Candidate,
    /// `#`: survivor beyond `tos maxclock`, kept in reserve.
    Backup,
    /// `*`: the system peer — or, while a PPS clock disciplines, the preferred source that
    /// numbers its seconds (as ntpd marks it).
    SystemPeer,
    /// `o`: the PPS clock that disciplines the clock while a preferred source numbers its
    /// seconds; never chosen by [`select`] itself.
    PpsPeer,
}

impl Tally {
    /// The tally character of `ntpq -p`.
    pub const fn symbol(self) -> char {
        match self {
            Self::Reject => ' ',
            Self::Falseticker => 'x',
            Self::Excess => '.',
            Self::Outlier => '-',
            Self::Candidate => '+',
            Self::Backup => '#',
            Self::SystemPeer => '*',
            Self::PpsPeer => 'o',
        }
    }

    /// The 3-bit select code of the peer status word (RFC 9327 / ntpd `CTL_PST_SEL_*`).
    pub const fn select_code(self) -> u8 {
        match self {
            Self::Reject => 0,
            Self::Falseticker => 1,
            Self::Excess => 2,
            Self::Outlier => 3,
            Self::Candidate => 4,
            Self::Backup => 5,
            Self::SystemPeer => 6,
            Self::PpsPeer => 7,
        }
    }
}

/// The `tos` parameters that steer selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectParams {
    /// `tos minclock`: clustering stops at this many survivors.
    pub minclock: usize,
    /// `tos maxclock`: survivors beyond this many are backups.
    pub maxclock: usize,
    /// `tos minsane`: fewer truechimers than this and there is no system peer.
    pub minsane: usize,
}

impl Default for SelectParams {
    /// ntpd's defaults: minclock 3, maxclock 10, minsane 1.
    fn default() -> Self {
        Self {
            minclock: 3,
            maxclock: 10,
            minsane: 1,
        }
    }
}

/// The outcome of one selection round.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// A tally per input, in input order.
    pub tallies: Vec<Tally>,
    /// Index of the system peer, if any.
    pub system_peer: Option<usize>,
    /// θ_sys: the combined offset, seconds.
    pub offset: f64,
    /// Ψ: system jitter, seconds.
    pub jitter: f64,
}

/// Runs selection over `inputs`; `None` entries are unfit sources (tally [`Tally::Reject`]).
pub fn select(inputs: &[Option<Candidate>], params: &SelectParams) -> Selection {
    let mut tallies = vec![Tally::Reject; inputs.len()];
    let fit: Vec<(usize, Candidate)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.map(|c| (i, c)))
        .collect();
    let none = |tallies| Selection {
        tallies,
        system_peer: None,
        offset: 0.0,
        jitter: 0.0,
    };

    let truechimers = match intersection(&fit) {
        Some((low, high)) => fit
            .iter()
            .filter(|(_, c)| {
                c.truechimer
                    || (c.offset + c.root_distance >= low && c.offset - c.root_distance <= high)
            })
            .copied()
            .collect::<Vec<_>>(),
        None => fit.iter().filter(|(_, c)| c.truechimer).copied().collect(),
    };
    for (i, _) in &fit {
        if let Some(t) = tallies.get_mut(*i) {
            *t = Tally::Falseticker;
        }
    }
    if truechimers.is_empty() || truechimers.len() < params.minsane {
        for (i, _) in &truechimers {
            if let Some(t) = tallies.get_mut(*i) {
                *t = Tally::Candidate;
            }
        }
        return none(tallies);
    }

    // Rank by stratum, then root distance; the excess beyond maxclock are backups.
    let mut survivors = truechimers;
    survivors.sort_by(|(_, a), (_, b)| metric(a).total_cmp(&metric(b)));
    let maxclock = params.maxclock.max(1);
    if survivors.len() > maxclock {
        for (i, _) in survivors.split_off(maxclock) {
            if let Some(t) = tallies.get_mut(i) {
                *t = Tally::Backup;
            }
        }
    }

    // Cluster: drop the survivor with the largest selection jitter while that jitter exceeds
    // the smallest peer jitter and more than minclock remain. `true` and `prefer` sources are
    // never dropped here (classic ntpd keeps the prefer peer through clustering too).
    while survivors.len() > params.minclock.max(1) {
        let (worst, worst_jitter) = survivors
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| !c.truechimer && !c.prefer)
            .map(|(k, (_, c))| (k, selection_jitter(c.offset, &survivors)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        let min_peer_jitter = survivors
            .iter()
            .map(|(_, c)| c.jitter)
            .fold(f64::INFINITY, f64::min);
        if worst_jitter <= min_peer_jitter
            || survivors.iter().all(|(_, c)| c.truechimer || c.prefer)
        {
            break;
        }
        let (i, _) = survivors.remove(worst);
        if let Some(t) = tallies.get_mut(i) {
            *t = Tally::Outlier;
        }
    }

    let peer_pos = survivors
        .iter()
        .position(|(_, c)| c.prefer)
        .or_else(|| survivors.iter().position(|(_, c)| c.was_system_peer))
        .unwrap_or(0);
    let Some(&(peer_idx, peer)) = survivors.get(peer_pos) else {
        return none(tallies);
    };
    for (i, _) in &survivors {
        if let Some(t) = tallies.get_mut(*i) {
            *t = if *i == peer_idx {
                Tally::SystemPeer
            } else {
                Tally::Candidate
            };
        }
    }

    // Combine: weights 1/λ (RFC 5905 §11.2.3).
    let (mut num, mut den, mut jit) = (0.0, 0.0, 0.0);
    for (_, c) in &survivors {
        let w = 1.0 / c.root_distance.max(1e-9);
        num += w * c.offset;
        den += w;
        jit += w * (c.offset - peer.offset).powi(2);
    }
    let offset = if den > 0.0 { num / den } else { peer.offset };
    let selection_jitter = if den > 0.0 { (jit / den).sqrt() } else { 0.0 };
    let jitter = (peer.jitter.powi(2) + selection_jitter.powi(2)).sqrt();
    Selection {
        tallies,
        system_peer: Some(peer_idx),
        offset,
        jitter,
    }
}

/// The intersection of the correctness intervals of a majority (Marzullo's algorithm as
/// modified in RFC 5905 §11.2.1): `(low, high)`, or `None` if no majority agrees.
fn intersection(fit: &[(usize, Candidate)]) -> Option<(f64, f64)> {
    let m = fit.len();
    if m == 0 {
        return None;
    }
    // Endpoints: (value, type) with −1 for a lower end, 0 for a midpoint, +1 for an upper end.
    let mut edges: Vec<(f64, i32)> = Vec::with_capacity(3 * m);
    for (_, c) in fit {
        edges.push((c.offset - c.root_distance, -1));
        edges.push((c.offset, 0));
        edges.push((c.offset + c.root_distance, 1));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    #[expect(
        clippy::cast_possible_wrap,
        clippy::cast_possible_truncation,
        reason = "m is small"
    )]
    let m_i = m as i32;
    let mut allow = 0;
    while 2 * allow < m_i {
        let need = m_i - allow;
        let (mut found, mut chime) = (0, 0);
        let mut low = f64::INFINITY;
        for &(value, kind) in &edges {
            chime -= kind;
            if chime >= need {
                low = value;
                break;
            }
            if kind == 0 {
                found += 1;
            }
        }
        chime = 0;
        let mut high = f64::NEG_INFINITY;
        for &(value, kind) in edges.iter().rev() {
            chime += kind;
            if chime >= need {
                high = value;
                break;
            }
            if kind == 0 {
                found += 1;
            }
        }
        if found <= allow && low < high {
            return Some((low, high));
        }
        allow += 1;
    }
    None
}

fn metric(c: &Candidate) -> f64 {
    f64::from(c.stratum) * MAX_DISTANCE + c.root_distance
}

/// RMS of the offset differences between `offset` and the other survivors.
fn selection_jitter(offset: f64, survivors: &[(usize, Candidate)]) -> f64 {
    if survivors.len() < 2 {
        return 0.0;
    }
    let sum: f64 = survivors
        .iter()
        .map(|(_, c)| (c.offset - offset).powi(2))
        .sum();
    #[expect(clippy::cast_precision_loss, reason = "few survivors")]
    let n = (survivors.len() - 1) as f64;
    (sum / n).sqrt()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::property;

    fn cand(offset: f64, dist: f64) -> Option<Candidate> {
        Some(Candidate {
            offset,
            root_distance: dist,
            stratum: 2,
            jitter: 50e-6,
            prefer: false,
            truechimer: false,
            was_system_peer: false,
        })
    }

    #[test]
    fn single_source_is_system_peer() {
        let s = select(&[cand(0.001, 0.01)], &SelectParams::default());
        assert_eq!(s.tallies, [Tally::SystemPeer]);
        assert!((s.offset - 0.001).abs() < 1e-12);
    }

    #[test]
    fn falseticker_among_three_is_marked_x() {
        let s = select(
            &[cand(0.0001, 0.002), cand(0.05, 0.002), cand(-0.0001, 0.002)],
            &SelectParams::default(),
        );
        assert_eq!(s.tallies[1], Tally::Falseticker);
        assert!(s.system_peer.is_some_and(|p| p != 1));
        assert!(s.offset.abs() < 0.0002);
    }

    #[test]
    fn two_disagreeing_sources_have_no_majority() {
        let s = select(
            &[cand(0.0, 0.001), cand(0.05, 0.001)],
            &SelectParams::default(),
        );
        assert_eq!(s.system_peer, None);
        assert_eq!(s.tallies, [Tally::Falseticker, Tally::Falseticker]);
    }

    #[test]
    fn prefer_wins_when_it_survives() {
        let mut inputs = vec![cand(0.0, 0.001), cand(0.0002, 0.003), cand(-0.0001, 0.002)];
        if let Some(c) = inputs[1].as_mut() {
            c.prefer = true;
        }
        let s = select(&inputs, &SelectParams::default());
        assert_eq!(s.system_peer, Some(1));
        assert_eq!(s.tallies[1], Tally::SystemPeer);
    }

    #[test]
    fn noisy_source_is_clustered_out() {
        let mut inputs = vec![
            cand(0.0, 0.01),
            cand(0.0001, 0.01),
            cand(-0.0001, 0.01),
            cand(0.0, 0.01),
            cand(0.008, 0.01),
        ];
        for c in inputs.iter_mut().flatten() {
            c.jitter = 20e-6;
        }
        let s = select(&inputs, &SelectParams::default());
        assert_eq!(s.tallies[4], Tally::Outlier);
        assert_eq!(
            s.tallies
                .iter()
                .filter(|t| **t == Tally::SystemPeer)
                .count(),
            1
        );
    }

    #[test]
    fn minsane_withholds_a_system_peer() {
        let params = SelectParams {
            minsane: 3,
            ..SelectParams::default()
        };
        let s = select(&[cand(0.0, 0.01), cand(0.0, 0.01)], &params);
        assert_eq!(s.system_peer, None);
    }

    #[test]
    fn combine_weighs_offsets_by_inverse_root_distance_and_adds_selection_jitter() {
        // Two survivors (fewer than minclock, so no clustering): the system peer at 1 ms with
        // λ = 1 ms, the other at 2 ms with λ = 3 ms. Weights 1000 and 333.3.
        let s = select(
            &[cand(0.001, 0.001), cand(0.002, 0.003)],
            &SelectParams::default(),
        );
        assert_eq!(s.system_peer, Some(0));
        assert!((s.offset - 0.00125).abs() < 1e-12, "{s:?}");
        // Selection jitter: sqrt((333.3 · (1 ms)²) / 1333.3) = 0.5 ms, combined with the
        // peer's own 50 µs.
        let expected = (50e-6_f64.powi(2) + 0.0005_f64.powi(2)).sqrt();
        assert!((s.jitter - expected).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn clustering_never_goes_below_minclock() {
        // Three survivors, one far from the others, all with tiny peer jitter: with minclock 3
        // nothing may be clustered out.
        let mut inputs = vec![cand(0.0, 0.01), cand(0.0001, 0.01), cand(0.003, 0.01)];
        for c in inputs.iter_mut().flatten() {
            c.jitter = 1e-6;
        }
        let s = select(&inputs, &SelectParams::default());
        assert!(!s.tallies.contains(&Tally::Outlier), "{s:?}");
        // With minclock 2 the far one goes.
        let params = SelectParams {
            minclock: 2,
            ..SelectParams::default()
        };
        assert_eq!(select(&inputs, &params).tallies[2], Tally::Outlier);
    }

    #[test]
    fn clustering_stops_once_selection_jitter_is_within_peer_jitter() {
        // Survivors that agree better than each one's own jitter are all kept, however low
        // minclock is.
        let mut inputs = vec![
            cand(0.0, 0.01),
            cand(0.0001, 0.01),
            cand(-0.0001, 0.01),
            cand(0.00005, 0.01),
        ];
        for c in inputs.iter_mut().flatten() {
            c.jitter = 0.001;
        }
        let params = SelectParams {
            minclock: 1,
            ..SelectParams::default()
        };
        let s = select(&inputs, &params);
        assert!(!s.tallies.contains(&Tally::Outlier), "{s:?}");
    }

    #[test]
    fn a_prefer_source_is_never_clustered_out() {
        // The prefer source is the one furthest from the rest: clustering drops the others
        // instead, and it stays the system peer.
        let mut inputs = vec![
            cand(0.0, 0.01),
            cand(0.0001, 0.01),
            cand(-0.0001, 0.01),
            cand(0.004, 0.01),
        ];
        for c in inputs.iter_mut().flatten() {
            c.jitter = 1e-6;
        }
        if let Some(c) = inputs[3].as_mut() {
            c.prefer = true;
        }
        let params = SelectParams {
            minclock: 1,
            ..SelectParams::default()
        };
        let s = select(&inputs, &params);
        assert_eq!(s.tallies[3], Tally::SystemPeer, "{s:?}");
        assert_eq!(s.system_peer, Some(3));
    }

    #[test]
    fn intersection_counts_midpoints_outside_it_against_the_falsetickers_allowed() {
        // Two wide intervals centred near 0 and three narrow ones near 0.55. Four intervals
        // share [0.45, 0.65], but the midpoints of the two wide ones lie below it: with one
        // falseticker allowed that is one midpoint too many, so the interval is the one three
        // sources share, [0.4, 0.7] (RFC 5905 §11.2.1).
        let fit: Vec<(usize, Candidate)> =
            [(0.0, 1.0), (0.01, 1.0), (0.5, 0.1), (0.55, 0.1), (0.6, 0.1)]
                .into_iter()
                .enumerate()
                .map(|(i, (offset, dist))| (i, cand(offset, dist).unwrap()))
                .collect();
        let (low, high) = intersection(&fit).expect("a majority");
        assert!(
            (low - 0.4).abs() < 1e-12 && (high - 0.7).abs() < 1e-12,
            "{low} {high}"
        );
        // The mirror image: midpoints above the interval count the same.
        let mirrored: Vec<(usize, Candidate)> = fit
            .iter()
            .map(|(i, c)| {
                (
                    *i,
                    Candidate {
                        offset: -c.offset,
                        ..*c
                    },
                )
            })
            .collect();
        let (low, high) = intersection(&mirrored).expect("a majority");
        assert!(
            (low + 0.7).abs() < 1e-12 && (high + 0.4).abs() < 1e-12,
            "{low} {high}"
        );
    }

    #[test]
    fn the_system_peer_is_the_lowest_stratum_then_the_shortest_root_distance() {
        let with = |offset: f64, dist: f64, stratum: u8| {
            cand(offset, dist).map(|c| Candidate { stratum, ..c })
        };
        // One stratum is worth MAX_DISTANCE (1.5 s) of root distance: stratum 2 at 1.3 s
        // ranks before stratum 3 at 0.1 s.
        let s = select(
            &[with(0.0, 0.1, 3), with(0.0, 1.3, 2)],
            &SelectParams::default(),
        );
        assert_eq!(s.system_peer, Some(1), "{s:?}");
        // The same stratum: the shorter root distance.
        let s = select(
            &[with(0.0, 0.01, 2), with(0.0, 0.001, 2)],
            &SelectParams::default(),
        );
        assert_eq!(s.system_peer, Some(1), "{s:?}");
    }

    #[test]
    fn two_survivors_that_disagree_beyond_their_jitter_are_clustered_to_minclock_one() {
        // Two truechimers 3 ms apart, each with 1 µs jitter: with minclock 1 one goes.
        let mut inputs = vec![cand(0.0, 0.01), cand(0.003, 0.01)];
        for c in inputs.iter_mut().flatten() {
            c.jitter = 1e-6;
        }
        let params = SelectParams {
            minclock: 1,
            ..SelectParams::default()
        };
        let s = select(&inputs, &params);
        assert_eq!(
            s.tallies.iter().filter(|t| **t == Tally::Outlier).count(),
            1,
            "{s:?}"
        );
    }

    #[test]
    fn selection_jitter_is_about_offset_differences_not_offsets() {
        // Four survivors a full second off, agreeing to within their jitter: none is dropped.
        let mut inputs = vec![
            cand(1.0, 0.01),
            cand(1.0001, 0.01),
            cand(0.9999, 0.01),
            cand(1.00005, 0.01),
        ];
        for c in inputs.iter_mut().flatten() {
            c.jitter = 0.001;
        }
        let params = SelectParams {
            minclock: 1,
            ..SelectParams::default()
        };
        let s = select(&inputs, &params);
        assert!(!s.tallies.contains(&Tally::Outlier), "{s:?}");
    }

    #[test]
    fn selection_jitter_is_the_rms_difference_over_the_other_survivors() {
        let params = SelectParams {
            minclock: 1,
            ..SelectParams::default()
        };
        let with_jitter = |offsets: &[f64], jitter: f64| {
            let inputs: Vec<Option<Candidate>> = offsets
                .iter()
                .map(|o| cand(*o, 0.01).map(|c| Candidate { jitter, ..c }))
                .collect();
            let s = select(&inputs, &params);
            s.tallies.iter().filter(|t| **t == Tally::Outlier).count()
        };
        // Two survivors 1 ms apart: each one's selection jitter is sqrt(1 ms² / 1) = 1 ms,
        // above a peer jitter of 0.8 ms (one goes), below 1.2 ms (both stay).
        assert_eq!(with_jitter(&[0.0, 0.001], 0.0008), 1);
        assert_eq!(with_jitter(&[0.0, 0.001], 0.0012), 0);
        // Three, one 1 ms from the other two: sqrt((1 ms² + 1 ms²) / 2) = 1 ms again.
        assert_eq!(with_jitter(&[0.0, 0.0, 0.001], 0.0008), 1);
        assert_eq!(with_jitter(&[0.0, 0.0, 0.001], 0.0012), 0);
    }

    #[test]
    fn unfit_sources_are_rejected_and_excess_are_backups() {
        let params = SelectParams {
            maxclock: 2,
            minclock: 1,
            minsane: 1,
        };
        let s = select(
            &[None, cand(0.0, 0.01), cand(0.0, 0.02), cand(0.0, 0.03)],
            &params,
        );
        assert_eq!(s.tallies[0], Tally::Reject);
        assert_eq!(s.tallies[3], Tally::Backup);
    }

    #[test]
    fn a_far_falseticker_is_never_selected() {
        let strategy = (
            2usize..6,
            proptest::collection::vec(-0.0005f64..0.0005, 6),
            0.02f64..1.0,
            any::<bool>(),
        );
        let checked = property::run(strategy, |(n, offsets, bad, sign)| {
            let mut inputs: Vec<_> = offsets.iter().take(n).map(|o| cand(*o, 0.001)).collect();
            let bad = if sign { bad } else { -bad };
            inputs.push(cand(bad, 0.001));
            let s = select(&inputs, &SelectParams::default());
            prop_assert_eq!(s.tallies[n], Tally::Falseticker);
            prop_assert!(s.system_peer.is_some_and(|p| p < n));
            prop_assert!(s.offset.abs() < 0.0005);
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }

    #[test]
    fn selection_never_panics() {
        let strategy = proptest::collection::vec(
            proptest::option::of((-10.0f64..10.0, 0.0f64..2.0, 0u8..17)),
            0..12,
        );
        let checked = property::run(strategy, |inputs| {
            let inputs: Vec<_> = inputs
                .into_iter()
                .map(|o| {
                    o.map(|(off, d, st)| Candidate {
                        offset: off,
                        root_distance: d,
                        stratum: st,
                        jitter: 1e-4,
                        prefer: false,
                        truechimer: false,
                        was_system_peer: false,
                    })
                })
                .collect();
            let s = select(&inputs, &SelectParams::default());
            prop_assert_eq!(s.tallies.len(), inputs.len());
            Ok(())
        });
        assert_eq!(checked, property::CASES);
    }
}
