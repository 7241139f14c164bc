//! What `describe` takes from a clap parse: typed flag names, the command
//! path, and values only where the CLI allowed them.

#![cfg(feature = "clap")]

use clap::{Arg, ArgAction, Command};
use tally::{PropertyValue, describe};

fn cli() -> Command {
    Command::new("mycli")
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .global(true)
                .action(ArgAction::Count),
        )
        .subcommand(
            Command::new("deploy").subcommand(
                Command::new("create")
                    .arg(Arg::new("region").long("region").default_value("us-east-1"))
                    .arg(
                        Arg::new("format")
                            .long("format")
                            .value_parser(["json", "yaml"])
                            .ignore_case(true),
                    )
                    .arg(Arg::new("name").long("name"))
                    .arg(Arg::new("quiet").short('q').action(ArgAction::SetTrue))
                    .arg(Arg::new("target")),
            ),
        )
}

fn run(args: &[&str], allowed: &[&str]) -> (String, Vec<String>, Vec<(String, PropertyValue)>) {
    let cli = cli();
    let matches = cli.clone().try_get_matches_from(args).expect("parse");
    let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
    let (path, flags, values) = describe(&cli, &matches, &allowed);
    (path, flags, values.into_iter().collect())
}

#[test]
fn typed_flags_only_never_defaults_or_positionals() {
    let (path, flags, values) = run(
        &[
            "mycli",
            "deploy",
            "create",
            "-q",
            "--name",
            "prod-db",
            "secret-target",
        ],
        &[],
    );
    assert_eq!(path, "deploy create");
    assert_eq!(flags, ["--name", "-q"]);
    assert!(values.is_empty());
}

#[test]
fn a_global_flag_counts_once() {
    let (_, flags, _) = run(&["mycli", "-v", "deploy", "create", "-v"], &[]);
    assert_eq!(flags, ["--verbose"]);
}

#[test]
fn values_only_for_allowed_flags_with_a_fixed_set() {
    let (_, _, values) = run(
        &[
            "mycli", "deploy", "create", "--format", "YAML", "--name", "prod-db",
        ],
        &["--format", "--name"],
    );
    // --name is allowed by the CLI but has no fixed set: its value stays home.
    assert_eq!(
        values,
        [("--format".to_owned(), PropertyValue::String("yaml".into()))]
    );
}

#[test]
fn the_root_command_has_an_empty_path() {
    let (path, flags, _) = run(&["mycli", "--verbose"], &[]);
    assert_eq!(path, "");
    assert_eq!(flags, ["--verbose"]);
}
