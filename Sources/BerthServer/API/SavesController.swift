import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird

/// `/v1/domains/{name}/save`, `/managedsave`, `/snapshots…` and `/v1/restore`: guest state to
/// files and snapshots, as operations with progress.
struct SavesController<Context: RequestContext> {
    let hypervisor: Hypervisor

    func add(to group: RouterGroup<Context>) {
        group.post("domains/:name/save") { request, context in
            let name = try context.parameters.require("name")
            let wait = try request.query.bool("wait")
            let body = try await JSONResponse.decode(SaveRequest.self, from: request)
            let supervisor = try hypervisor.supervisor(name)
            let operation = hypervisor.operations.runWithProgress(domain: name, action: "save") { progress in
                try await supervisor.save(to: body.file, state: body.state, progress: progress)
            }
            return try await hypervisor.operations.answer(operation, wait: wait) { try JSONResponse.make(try hypervisor.info(name)) }
        }
        group.post("domains/:name/managedsave") { request, context in
            let name = try context.parameters.require("name")
            let wait = try request.query.bool("wait")
            let supervisor = try hypervisor.supervisor(name)
            let operation = hypervisor.operations.runWithProgress(domain: name, action: "managedsave") { progress in
                try await supervisor.managedSave(resumeAtDaemonStart: false, progress: progress)
            }
            return try await hypervisor.operations.answer(operation, wait: wait) { try JSONResponse.make(try hypervisor.info(name)) }
        }
        group.delete("domains/:name/managedsave") { _, context in
            try await hypervisor.supervisor(try context.parameters.require("name")).removeManagedSave()
            return Response(status: .noContent)
        }
        group.post("restore") { request, _ in
            let wait = try request.query.bool("wait")
            let body = try await JSONResponse.decode(RestoreRequest.self, from: request)
            // The file names its domain; an unreadable one fails here, before any operation.
            guard let domain = hypervisor.savedDomain(body.file) else {
                _ = try SaveImage.open(body.file)
                throw BerthError(.invalidArgument, "\(body.file) is not a Berth save file.")
            }
            let operation = hypervisor.operations.runWithProgress(domain: domain, action: "restore") { progress in
                _ = try await hypervisor.restore(body.file, state: body.state, progress: progress)
            }
            return try await hypervisor.operations.answer(operation, wait: wait) { try JSONResponse.make(try hypervisor.info(domain)) }
        }
        group.get("domains/:name/snapshots") { _, context in
            let name = try context.parameters.require("name")
            _ = try hypervisor.catalog.domain(named: name)
            return try JSONResponse.make(try hypervisor.catalog.snapshots(name).map(\.info))
        }
        group.post("domains/:name/snapshots") { request, context in
            let name = try context.parameters.require("name")
            let wait = try request.query.bool("wait")
            let body = try await JSONResponse.decode(SnapshotRequest.self, from: request)
            try DomainSupervisor.checkSnapshotName(body.name)
            let supervisor = try hypervisor.supervisor(name)
            let operation = hypervisor.operations.run(domain: name, action: "snapshot-create") {
                _ = try await supervisor.createSnapshot(body)
            }
            return try await hypervisor.operations.answer(operation, wait: wait) {
                try JSONResponse.make(try hypervisor.catalog.snapshot(name, body.name).info, status: .created)
            }
        }
        group.get("domains/:name/snapshots/:snapshot") { _, context in
            let name = try context.parameters.require("name")
            return try JSONResponse.make(try hypervisor.catalog.snapshot(name, try context.parameters.require("snapshot")).info)
        }
        group.post("domains/:name/snapshots/:snapshot/revert") { request, context in
            let name = try context.parameters.require("name")
            let snapshot = try context.parameters.require("snapshot")
            let wait = try request.query.bool("wait")
            _ = try hypervisor.catalog.snapshot(name, snapshot)
            let supervisor = try hypervisor.supervisor(name)
            let operation = hypervisor.operations.run(domain: name, action: "snapshot-revert") {
                try await supervisor.revertSnapshot(snapshot)
            }
            return try await hypervisor.operations.answer(operation, wait: wait) { try JSONResponse.make(try hypervisor.info(name)) }
        }
        group.delete("domains/:name/snapshots/:snapshot") { _, context in
            let name = try context.parameters.require("name")
            try await hypervisor.supervisor(name).deleteSnapshot(try context.parameters.require("snapshot"))
            return Response(status: .noContent)
        }
    }
}
