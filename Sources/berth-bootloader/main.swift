import BerthBoot

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// A hard stop behind the library's own deadline: if a read inside a guest filesystem ever
// hangs, SIGALRM's default action ends the process (XSA-443). `run` enters the --sandbox
// (limits, then UID:GID) before it opens or reads anything; an alarm survives setuid.
let options = try? BootloaderCommand.Options(parsing: Array(CommandLine.arguments.dropFirst()))
let seconds = options?.limits.seconds ?? BootLimits.defaultExtractSeconds
alarm(UInt32(clamping: seconds.addingReportingOverflow(10).overflow ? Int.max : seconds + 10))
exit(BootloaderCommand.run(arguments: Array(CommandLine.arguments.dropFirst())))
