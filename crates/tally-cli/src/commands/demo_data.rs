//! `tally demo-data`: synthetic events of any size, for the dashboard and
//! for benchmarks.

use anyhow::{Context, Result};

use crate::target::StoreArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The app the events belong to (added if missing).
    #[arg(long, default_value = crate::demo::APP)]
    app: String,
    /// How many events.
    #[arg(long, default_value_t = crate::demo::EVENTS)]
    events: u64,
    /// Seed of the generator: the same seed makes the same data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let spec = args.store.spec()?;
    let store = spec.open().with_context(|| format!("opening {spec}"))?;
    if !store.apps()?.iter().any(|a| a.name == args.app) {
        store.add_app(&args.app)?;
    }
    let started = std::time::Instant::now();
    crate::demo::fill(&mut *store.writer()?, &args.app, args.events, args.seed)?;
    eprintln!(
        "Wrote {} events of {} to {spec} in {:.1} s.",
        args.events,
        args.app,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
