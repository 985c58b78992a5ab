//! `ironmesh completion <shell>`: a completion script for bash, zsh, fish (and elvish,
//! PowerShell), generated from the same argument definitions the CLI parses with.

use clap::CommandFactory;
use clap_complete::Shell;

/// Writes the completion script for `shell` to standard output.
pub fn print<C: CommandFactory>(shell: Shell) {
    let mut command = C::command();
    let name = command.get_name().to_string();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
}
