//! Reading a run's command path and typed flags from clap.

use std::collections::BTreeMap;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use tally_protocol::PropertyValue;

use crate::{Run, Tally};

impl Tally {
    /// Starts recording a run from clap's parse result: the subcommand path
    /// and the flags the user typed on the command line (not defaults, not
    /// environment), never their values, except for flags named in
    /// [`Builder::send_values_of`](crate::Builder::send_values_of) whose
    /// value is one of the flag's possible values.
    ///
    /// ```
    /// let cli = clap::Command::new("mycli").subcommand(
    ///     clap::Command::new("deploy")
    ///         .arg(clap::Arg::new("force").long("force").action(clap::ArgAction::SetTrue))
    ///         .arg(clap::Arg::new("region").long("region")),
    /// );
    /// let matches = cli.clone().get_matches_from(["mycli", "deploy", "--force", "--region", "eu-west-1"]);
    /// let (command, flags, _) = tally::describe(&cli, &matches, &[]);
    /// assert_eq!(command, "deploy");
    /// assert_eq!(flags, ["--force", "--region"]);
    /// ```
    pub fn start_clap(&self, command: &Command, matches: &ArgMatches) -> Run {
        let (path, flags, values) = describe(command, matches, &self.shared.value_flags);
        Run::start(&self.shared, &path, flags, values)
    }
}

/// The command path, typed flag names and the allowed flag values of a
/// clap parse; what [`Tally::start_clap`] records.
pub fn describe(
    command: &Command,
    matches: &ArgMatches,
    value_flags: &[String],
) -> (String, Vec<String>, BTreeMap<String, PropertyValue>) {
    let mut path = Vec::new();
    let mut flags = Vec::new();
    let mut values = BTreeMap::new();
    let (mut command, mut matches) = (command, matches);
    loop {
        for arg in command.get_arguments() {
            if arg.is_positional() {
                continue; // arguments are the user's data, not a feature
            }
            let id = arg.get_id().as_str();
            if matches.value_source(id) != Some(ValueSource::CommandLine) {
                continue;
            }
            let name = match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => format!("--{long}"),
                (None, Some(short)) => format!("-{short}"),
                (None, None) => continue,
            };
            if value_flags.contains(&name)
                && let Some(value) = allowed_value(arg, matches)
            {
                values.insert(name.clone(), PropertyValue::String(value));
            }
            if !flags.contains(&name) {
                flags.push(name);
            }
        }
        let Some((name, sub_matches)) = matches.subcommand() else {
            break;
        };
        let Some(sub) = command.find_subcommand(name) else {
            break;
        };
        path.push(sub.get_name().to_owned());
        (command, matches) = (sub, sub_matches);
    }
    (path.join(" "), flags, values)
}

/// The flag's value when it is one of the flag's declared possible values,
/// in its canonical spelling.
fn allowed_value(arg: &clap::Arg, matches: &ArgMatches) -> Option<String> {
    let raw = matches
        .try_get_raw(arg.get_id().as_str())
        .ok()
        .flatten()?
        .next()?;
    let raw = raw.to_str()?;
    arg.get_possible_values()
        .into_iter()
        .find(|pv| pv.matches(raw, arg.is_ignore_case_set()))
        .map(|pv| pv.get_name().to_owned())
}
