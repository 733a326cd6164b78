import ArgumentParser
import BerthModel
import Foundation

struct DomDisplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domdisplay", abstract: "Print the URI of a running domain's graphical console.",
        discussion: """
            vnc+unix:///PATH or spice+unix:///PATH for the default display (a unix socket on berthd's \
            host; root's, as only berthd may open it), vnc://HOST:PORT or spice://HOST:PORT for a TCP \
            display. remote-viewer (Debian's virt-viewer) opens spice+unix://, spice:// (with the \
            password in the URI) and vnc:// (it asks for the password); for vnc+unix:// give the \
            socket's path to TigerVNC's vncviewer (Debian's tigervnc-viewer). From another machine, \
            use the web console (http://127.0.0.1:8000/ui/) or the WebSocket /v1/domains/NAME/vnc \
            (or /spice), which carry the API's authentication.
            """)

    @Argument(help: "Domain name.") var name: String
    @Flag(help: "Put the display's password in the URI (vnc://:PASSWORD@HOST:PORT, spice://HOST:PORT?password=PASSWORD).")
    var includePassword = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let display = try await connection.run { try await $0.display(name) }
        if output.json { return try output.printJSON(display) }
        print(Self.uri(display, includePassword: includePassword))
    }

    static func uri(_ display: DisplayInfo, includePassword: Bool) -> String {
        guard includePassword, let password = display.password, display.socket == nil,
            let encoded = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics)
        else { return display.uri }
        switch display.kind {
        case .vnc: return display.uri.replacingOccurrences(of: "vnc://", with: "vnc://:\(encoded)@")
        case .spice: return display.uri + "?password=\(encoded)"
        }
    }
}

/// virsh's vncdisplay: the same answer, for VNC displays only.
struct VNCDisplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vncdisplay", abstract: "Print the URI of a running domain's VNC display.")

    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let display = try await connection.run { try await $0.display(name) }
        guard display.kind == .vnc else {
            throw BerthError(
                .wrongState, "Domain '\(name)' has a \(display.kind.rawValue) display, not VNC.", remedy: "Use 'berth domdisplay \(name)'.")
        }
        print(display.uri)
    }
}
