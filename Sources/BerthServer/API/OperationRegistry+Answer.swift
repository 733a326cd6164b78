import BerthModel
import Hummingbird

extension OperationRegistry {
    /// The HTTP answer to a request that started `operation`: at once `202` with the operation
    /// (the client polls it), or with `?wait=true` what `result` makes when it has succeeded
    /// (its error when it failed).
    func answer(_ operation: OperationInfo, wait: Bool, result: () throws -> Response) async throws -> Response {
        guard wait else { return try JSONResponse.make(operation, status: .accepted) }
        let done = try await get(operation.id, wait: .seconds(3600))
        if let error = done.error { throw error }
        return try result()
    }
}
