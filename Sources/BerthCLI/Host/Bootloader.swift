import ArgumentParser
import BerthBoot
import Foundation

struct Bootloader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootloader",
        abstract: "Read a guest disk's boot menu and extract its kernel, as PyGRUB did (needs no daemon).",
        discussion: """
            Takes PyGRUB's options: IMAGE [--list-entries] [--entry=N|TITLE] [--kernel=PATH] [--ramdisk=PATH] \
            [--args=ARGS] [--output-format=sxp|simple|simple0] [--output=FILE] [--output-directory=DIR] [-q] [-n] \
            [--offset=BYTES] [--isconfig] [--uefi] (exit status 2: UEFI firmware cannot start the kernel, which has \
            no EFI stub and is not a relocatable bzImage). The same program is installed alone as berth-bootloader, for xl configs' \
            bootloader = line.
            """)

    @Argument(parsing: .captureForPassthrough, help: "PyGRUB's arguments.")
    var arguments: [String] = []

    func run() throws {
        let status = BootloaderCommand.run(arguments: arguments)
        if status != 0 { throw ExitCode(status) }
    }
}
