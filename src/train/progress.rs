//! The progress bar of training and of long evaluations: drawn on standard
//! error, or hidden ([`Progress`]).

use super::config::Progress;

pub(crate) fn progress_bar(progress: Progress, steps: usize) -> indicatif::ProgressBar {
    match progress {
        Progress::Hidden => indicatif::ProgressBar::hidden(),
        Progress::Auto => {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(steps as u64),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {msg} [{elapsed}<{eta}]",
            ) {
                bar.set_style(style);
            }
            bar
        }
    }
}
