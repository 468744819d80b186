import CTIFF
import Logging
import Synchronization

/// The messages of the decoders inside OpenSlide — libtiff's errors and warnings ("TIFFFillTile: Invalid tile byte
/// count", "TIFFReadDirectory: Unknown field with tag …"), which libtiff prints raw on stderr by default — go to the
/// logger instead, as structured lines (`library=libtiff module=… message=…`), so that they reach the journal with
/// the rest. libtiff errors are logged at warning (OpenSlide's own error, naming the slide, follows and decides),
/// warnings at debug.
public enum DecoderMessages {
    private static let logger = Mutex<Logger?>(nil)

    /// Routes the messages to `logger` from now on (process-wide; the last call wins).
    public static func route(to logger: Logger) {
        self.logger.withLock { $0 = logger }
        csmil_tiff_route_messages { isError, module, message in
            guard let logger = DecoderMessages.logger.withLock({ $0 }) else { return }
            let metadata: Logger.Metadata = [
                "library": "libtiff", "module": "\(module.map { String(cString: $0) } ?? "")",
                "message": "\(message.map { String(cString: $0) } ?? "")",
            ]
            if isError != 0 {
                logger.warning("slide decoder error", metadata: metadata)
            } else {
                logger.debug("slide decoder warning", metadata: metadata)
            }
        }
    }
}
