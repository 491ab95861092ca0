//! The accuracy benchmark: every acceptance scenario over several seeds, one row each with the
//! number of runs that meet the scenario's target, the median and range of time to sync, RMS
//! and max true offset after sync and over the last hour before the end (or before the outage
//! in g), final frequency error and requests sent.
//!
//! `cargo run --release -p sundial-sim --bin accuracy [-- SEEDS [--misses]]` (default 10
//! seeds); `--misses` then lists every run that misses its target, one line each.

use std::process::ExitCode;

use sundial_sim::scenario::{self, Report};

/// Seeds run per scenario unless the command line says otherwise.
const DEFAULT_SEEDS: u64 = 10;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let misses = args.iter().any(|a| a == "--misses");
    let counts: Vec<&String> = args.iter().filter(|a| *a != "--misses").collect();
    let seeds = match counts.as_slice() {
        [] => DEFAULT_SEEDS,
        [n] => match n.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => return usage(),
        },
        _ => return usage(),
    };
    let mut missed = Vec::new();
    println!(
        "| scenario | runs on target | sync (s) | RMS after sync (µs) | max after sync (µs) \
         | RMS, last hour (µs) | max, last hour (µs) | final freq error (ppm) | packets sent \
         | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (k, template) in scenario::table(1).into_iter().enumerate() {
        let reports: Vec<Report> = (1..=seeds)
            .map(|seed| {
                let mut sc = scenario::table(seed).swap_remove(k);
                sc.seed = seed;
                sundial_sim::run(&sc)
            })
            .collect();
        let mut on_target = 0;
        for (seed, r) in (1..).zip(&reports) {
            if template.target.met_by(r) {
                on_target += 1;
            } else {
                missed.push(format!(
                    "{} seed {seed}: sync {} s, RMS {:.1} µs, max {:.1} µs at {:.1} s, {} steps{}",
                    template.name,
                    r.sync_s
                        .map_or_else(|| "never".to_owned(), |t| format!("{t:.1}")),
                    r.rms_s * 1e6,
                    r.max_s * 1e6,
                    r.max_at_s,
                    r.steps,
                    r.downstream.map_or_else(String::new, |d| format!(
                        "; downstream client: sync {} s, RMS {:.1} µs, max {:.1} µs",
                        d.sync_s
                            .map_or_else(|| "never".to_owned(), |t| format!("{t:.1}")),
                        d.rms_s * 1e6,
                        d.max_s * 1e6
                    ))
                ));
            }
        }
        let synced: Vec<f64> = reports.iter().filter_map(|r| r.sync_s).collect();
        let unsynced = reports.len() - synced.len();
        let micro = |f: fn(&Report) -> f64| {
            summary(&reports.iter().map(|r| f(r) * 1e6).collect::<Vec<_>>(), 1)
        };
        let mut notes = Vec::new();
        if unsynced > 0 {
            notes.push(format!("{unsynced} never in sync"));
        }
        let misses_total: u64 = reports.iter().map(|r| r.bound_misses).sum();
        let missed_runs = reports.iter().filter(|r| r.bound_misses > 0).count();
        let worst_ratio = reports
            .iter()
            .map(|r| r.bound_max_ratio)
            .fold(0.0, f64::max);
        notes.push(format!(
            "served: max \\|error\\| {} µs, bound {} µs, worst error/bound {worst_ratio:.2}, \
             bound missed {misses_total}× in {missed_runs} runs",
            micro(|r| r.served_max_s),
            micro(|r| r.bound_mean_s),
        ));
        let steps: u32 = reports.iter().map(|r| r.steps).sum();
        if steps > 0 {
            notes.push(format!("{steps} steps in {} runs", reports.len()));
        }
        if template.name == "g" {
            let worst = reports
                .iter()
                .map(|r| r.final_offset_s.abs())
                .fold(0.0, f64::max);
            notes.push(format!("\\|offset\\| at end ≤ {:.0} µs", worst * 1e6));
        }
        let downstream: Vec<_> = reports.iter().filter_map(|r| r.downstream).collect();
        if !downstream.is_empty() {
            let synced: Vec<f64> = downstream.iter().filter_map(|d| d.sync_s).collect();
            let never = downstream.len() - synced.len();
            let of = |f: fn(&scenario::DownstreamReport) -> f64| {
                summary(
                    &downstream.iter().map(|d| f(d) * 1e6).collect::<Vec<_>>(),
                    1,
                )
            };
            notes.push(format!(
                "downstream client: sync {} s{}, RMS {} µs, max {} µs after its sync",
                summary(&synced, 0),
                if never > 0 {
                    format!(" ({never} never)")
                } else {
                    String::new()
                },
                of(|d| d.rms_s),
                of(|d| d.max_s),
            ));
        }
        if template.name == "c" {
            let falseticker_trusted: u64 = reports.iter().map(|r| r.trusted_rounds[2]).sum();
            let falseticker_peer: u64 = reports.iter().map(|r| r.system_peer_rounds[2]).sum();
            notes.push(format!(
                "falseticker: system peer {falseticker_peer}×, not x {falseticker_trusted}×"
            ));
        }
        #[expect(clippy::cast_precision_loss, reason = "packet counts are small")]
        let packets: Vec<f64> = reports.iter().map(|r| r.packets_sent as f64).collect();
        println!(
            "| {} {} | {on_target}/{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            template.name,
            template.description,
            reports.len(),
            summary(&synced, 0),
            micro(|r| r.rms_s),
            micro(|r| r.max_s),
            micro(|r| r.settled_rms_s),
            micro(|r| r.settled_max_s),
            summary(
                &reports
                    .iter()
                    .map(|r| r.final_freq_error_ppm)
                    .collect::<Vec<_>>(),
                3
            ),
            summary(&packets, 0),
            notes.join("; "),
        );
    }
    if misses {
        println!();
        for line in &missed {
            println!("{line}");
        }
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: accuracy [SEEDS] [--misses]");
    ExitCode::from(2)
}

/// "median (min…max)" with `decimals` places, or "–" for no values.
fn summary(values: &[f64], decimals: usize) -> String {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let (Some(lo), Some(hi)) = (v.first(), v.last()) else {
        return "–".to_owned();
    };
    let mid = v.get(v.len() / 2).copied().unwrap_or(*lo);
    if v.len() == 1 {
        format!("{mid:.decimals$}")
    } else {
        format!("{mid:.decimals$} ({lo:.decimals$}…{hi:.decimals$})")
    }
}
