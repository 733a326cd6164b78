import BerthServer

await BerthDaemonCommand.main(arguments: Array(CommandLine.arguments.dropFirst()))
