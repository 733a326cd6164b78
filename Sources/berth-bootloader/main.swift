#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import BerthBoot

// A hard stop behind the library's own deadline: if a read inside a guest filesystem ever
// hangs, SIGALRM's default action ends the process (XSA-443).
let options = try? BootloaderCommand.Options(parsing: Array(CommandLine.arguments.dropFirst()))
alarm(UInt32(clamping: (options?.limits.seconds ?? BootLimits.defaultExtractSeconds) + 10))
exit(BootloaderCommand.run(arguments: Array(CommandLine.arguments.dropFirst())))
