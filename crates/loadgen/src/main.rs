//! `sundial-loadgen`: sends NTP client requests to a loopback server at a fixed rate and counts
//! the replies. See `sundial-loadgen --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match sundial_loadgen::Config::from_args(&args) {
        Ok(sundial_loadgen::Parsed::Run(config)) => config,
        Ok(sundial_loadgen::Parsed::Help) => {
            print!("{}", sundial_loadgen::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sundial-loadgen: {e}\n\n{}", sundial_loadgen::USAGE);
            return ExitCode::from(2);
        }
    };
    match sundial_loadgen::run(&config) {
        Ok(report) => {
            if config.json {
                println!("{}", report.to_json());
            } else {
                print!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sundial-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
