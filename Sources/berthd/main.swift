import BerthServer

#if canImport(Glibc)
    import Glibc

    // glibc gives each thread that allocates its own arena (up to 8 per core), and the event
    // loops, SQLite callers and per-domain tasks each keep one alive. Two arenas keep berthd's resident
    // memory small. mallopt is not in Swift's Glibc module, so it is looked up by name.
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    let mArenaMax: Int32 = -8  // M_ARENA_MAX in <malloc.h>
    if let symbol = dlsym(nil, "mallopt") {
        _ = unsafeBitCast(symbol, to: Mallopt.self)(mArenaMax, 2)
    }
#endif

await BerthDaemonCommand.main(arguments: Array(CommandLine.arguments.dropFirst()))
