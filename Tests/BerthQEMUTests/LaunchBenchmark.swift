import BerthModel
import Foundation
import Testing

@testable import BerthQEMU

/// Time from "start" to the guest's marker: `QEMUProcess.launch` against plain
/// `qemu-system-x86_64` with the same arguments, alternating, on pc and microvm.
/// Run with `BERTH_BENCH=1 swift test --filter LaunchBenchmark`; it prints, it does not judge.
@Suite(
    .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["BERTH_BENCH"] != nil && GuestFixture.available))
struct LaunchBenchmark {
    static let runs = Int(ProcessInfo.processInfo.environment["BERTH_BENCH_RUNS"] ?? "") ?? 3

    @Test(arguments: ["pc", "microvm"])
    func launchToMarker(machine: String) async throws {
        let binary = try QEMUBinary.locate()
        var api: [Double] = []
        var raw: [Double] = []
        var launchReturned: [Double] = []
        var failures: [String] = []
        for run in 0..<Self.runs {
            for viaAPI in [true, false] {
                var spec = guestSpec(name: "bq-bench-\(run)")
                spec.machine = machine
                let scratch = Scratch()
                defer { scratch.remove() }
                let paths = scratch.paths(for: spec)
                let line = try QEMUCommandLine(spec: spec, accel: .tcg, paths: paths)
                let clock = ContinuousClock()
                let start = clock.now
                var process: QEMUProcess?
                if viaAPI {
                    process = try await QEMUProcess.launch(line, binary: binary, paths: paths)
                    launchReturned.append((clock.now - start).seconds)
                } else {
                    try paths.prepare()
                    // The same descriptors and posix_spawn, nothing else (no QMP, no pidfile).
                    let opened = try QEMUProcess.openDescriptors(line)
                    let pid = try Spawn.launch([binary] + line.arguments, passing: opened, output: 2)
                    opened.forEach { close($0) }
                    try QEMUProcess.writePIDFile(pid, path: paths.pidFile)
                }
                let marker = await waitFor("BERTH-GUEST-READY", in: paths.consoleLog, timeout: .seconds(30))
                let elapsed = clock.now - start
                if let process {
                    await process.stop(grace: .seconds(2))
                } else if let pid = QEMUProcess.runningPID(uuid: spec.uuid, paths: paths) {
                    kill(pid, SIGKILL)
                }
                if marker == nil {
                    failures.append("\(viaAPI ? "api" : "raw") run \(run): no marker in 30 s")
                } else if viaAPI {
                    api.append(elapsed.seconds)
                } else {
                    raw.append(elapsed.seconds)
                }
            }
        }
        func summary(_ xs: [Double]) -> String {
            xs.isEmpty
                ? "-"
                : xs.map { String(format: "%.2f", $0) }.joined(separator: " ")
                    + String(format: " (median %.2f s)", xs.sorted()[xs.count / 2])
        }
        print("BENCH \(machine): api \(summary(api)); raw qemu \(summary(raw)); failures \(failures)")
        print("BENCH \(machine): launch() returned (QEMU set up, QMP connected) after \(summary(launchReturned))")
        if !api.isEmpty, !raw.isEmpty {
            print(
                String(
                    format: "BENCH \(machine): api/raw median ratio %.3f",
                    api.sorted()[api.count / 2] / raw.sorted()[raw.count / 2]))
        }
        #expect(api.count + raw.count + failures.count == 2 * Self.runs)
    }
}
