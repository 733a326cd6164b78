import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird

/// `POST /v1/domains/{name}/install`: `berth install` as one request. The plan is checked at
/// once (a refusal is the answer, and changes nothing); the install itself runs as an
/// operation whose `messages` say what it is doing.
struct InstallController<Context: RequestContext> {
    let hypervisor: Hypervisor
    /// The media listener's port: a kickstart sent with the plan is served to the guest there.
    let mediaPort: Int?

    func add(to group: RouterGroup<Context>) {
        group.post("domains/:name/install") { request, context in
            let name = try context.parameters.require("name")
            // Kickstart and --initrd-inject files travel inline.
            let plan = try await JSONResponse.decode(InstallPlan.self, from: request, limit: 64 << 20)
            try hypervisor.checkInstall(plan, name: name, mediaPort: mediaPort)
            let operation = hypervisor.operations.runNoting(domain: name, action: "install") { id in
                try await hypervisor.install(plan, mediaPort: mediaPort) { message in
                    hypervisor.operations.note(id, message)
                }
            }
            return try JSONResponse.make(operation, status: .accepted)
        }
        group.post("domains/:name/reinstall") { request, context in
            let name = try context.parameters.require("name")
            let body = try await JSONResponse.decode(ReinstallRequest.self, from: request, limit: 4 << 20)
            let record = try await hypervisor.checkReinstall(name, body, mediaPort: mediaPort)
            let operation = hypervisor.operations.runNoting(domain: name, action: "reinstall") { id in
                try await hypervisor.reinstall(name, body, record: record, mediaPort: mediaPort) { message in
                    hypervisor.operations.note(id, message)
                }
            }
            return try JSONResponse.make(operation, status: .accepted)
        }
    }
}
