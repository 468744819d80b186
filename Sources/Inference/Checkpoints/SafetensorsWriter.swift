import Foundation

/// Writes weights in the formats `Checkpoint.load` reads.
public enum CheckpointWriter {
    /// Encodes tensors as a `.safetensors` file (float32, little-endian, in `dict`'s order), the
    /// format the `safetensors` Python package reads and writes.
    public static func safetensors(_ dict: StateDict) -> Data {
        var header: [String] = []
        var offset = 0
        for name in dict.names {
            let tensor = dict[name]!
            let end = offset + tensor.count * 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            header.append(
                "\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var json = "{" + header.joined(separator: ",") + "}"
        json += String(repeating: " ", count: (8 - json.utf8.count % 8) % 8)  // aligns the data area
        var data = Data()
        var length = UInt64(json.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(json.utf8))
        data.reserveCapacity(data.count + offset)
        for name in dict.names {
            for value in dict[name]!.values {
                var bits = value.bitPattern.littleEndian
                withUnsafeBytes(of: &bits) { data.append(contentsOf: $0) }
            }
        }
        return data
    }

    /// A JSON string literal for `text`.
    private static func jsonString(_ text: String) -> String {
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case _ where scalar.value < 0x20: escaped += String(format: "\\u%04x", scalar.value)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped + "\""
    }
}
