//! `emag-sync bench fleet`: being written.

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> u8 {
    eprintln!("bench fleet is not written yet");
    1
}
