//! What the Kafka programs share: the start of `main` (the options or the
//! help, and the stop flag SIGTERM and SIGINT raise) and the values of the
//! options they have in common.

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[path = "../../../examples/common/mod.rs"]
mod examples_common;

/// `ALIAS=HEX`: an encryption key given on the command line (the
/// examples' parser).
#[allow(dead_code)] // kafka_sink's
pub fn key_alias(spec: &str) -> Result<(String, Vec<u8>), Box<dyn Error>> {
    Ok(examples_common::parse_key(spec).ok_or("--key-alias ALIAS=HEX: the key in hex")?)
}

/// The options `parse` finds, and a flag SIGTERM and SIGINT set; or the
/// exit code: 0 once `--help` printed `help`, 2 on bad arguments, 1 if the
/// signals cannot be handled.
pub fn start<A>(
    program: &str,
    help: &str,
    parse: impl FnOnce() -> Result<Option<A>, Box<dyn Error>>,
) -> Result<(A, Arc<AtomicBool>), ExitCode> {
    let args = match parse() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{help}");
            return Err(ExitCode::SUCCESS);
        }
        Err(e) => {
            eprintln!("{program}: {e}\n({program} --help lists the options)");
            return Err(ExitCode::from(2));
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("{program}: cannot handle signal {signal}: {e}");
            return Err(ExitCode::from(1));
        }
    }
    Ok((args, stop))
}

/// `--set KEY=VALUE`: a librdkafka setting.
pub fn setting(kv: &str) -> Result<(String, String), Box<dyn Error>> {
    let (k, v) = kv.split_once('=').ok_or("--set KEY=VALUE")?;
    Ok((k.to_owned(), v.to_owned()))
}

/// A number of seconds (`--idle-exit`, `--abandoned-after`): an error,
/// not a panic, when negative, infinite or NaN.
pub fn seconds(text: &str) -> Result<Duration, Box<dyn Error>> {
    Duration::try_from_secs_f64(text.parse()?).map_err(|e| format!("{text} seconds: {e}").into())
}
