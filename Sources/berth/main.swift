import BerthCLI

await Berth.main(arguments: Array(CommandLine.arguments.dropFirst()))
