import BerthFormats
import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird

/// The API's error body: `{"error": {"code": …, "message": …, "remedy": …}}`.
struct ErrorBody: Codable {
    var error: BerthError
}

extension BerthError: HTTPResponseError {
    public var status: HTTPResponse.Status { HTTPResponse.Status(code: code.httpStatus) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        try JSONResponse.make(ErrorBody(error: self), status: status)
    }
}

/// Turns any error that is not already a `BerthError` into one, so every failure reaches
/// the client in the same shape (SQLite and decoding errors included).
struct ErrorMappingMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as BerthError {
            throw error
        } catch let error as HTTPError {
            throw BerthError(
                error.status == .notFound ? .notFound : .invalidArgument,
                error.body ?? "\(error.status.code) \(error.status.reasonPhrase)",
                remedy: error.status == .notFound ? "See docs/openapi.yaml for the API's paths." : nil)
        } catch {
            throw BerthError(.internal, "Internal error: \(error)", remedy: "Check berthd's log; this is a bug.")
        }
    }
}

enum JSONResponse {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        make(body: ByteBuffer(bytes: try encoder.encode(value)), status: status)
    }

    /// A JSON body written by other means than `encoder` (`DomainListJSON`).
    static func make(body: ByteBuffer, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// Decodes a request body, naming the offending field when it does not fit.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int = 1 << 20) async throws -> T {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            throw BerthError(.invalidArgument, "The request body is over \(limit) bytes.", remedy: "Send a smaller document.")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw DomainJSON.describe(error, source: "request body")
        } catch let error as BerthError {
            throw error
        } catch {
            throw BerthError(.invalidArgument, "Malformed JSON: \(error)", remedy: "Send a JSON object.")
        }
    }
}
