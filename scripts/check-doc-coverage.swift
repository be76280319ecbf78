// Lists the public symbols of a symbol graph (swift-symbolgraph-extract's JSON) that have no doc
// comment, and exits 1 when there is one. A member that implements a protocol requirement
// inherits the requirement's comment (as DocC shows it); members synthesized by the compiler or
// inherited from the standard library (Equatable's !=, RawRepresentable's init) are not the
// package's to document. Usage: swift scripts/check-doc-coverage.swift FILE.symbols.json...
import Foundation

var missing: [String] = []
var total = 0
for path in CommandLine.arguments.dropFirst() {
    guard let data = FileManager.default.contents(atPath: path),
          let graph = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let symbols = graph["symbols"] as? [[String: Any]], let relationships = graph["relationships"] as? [[String: Any]] else {
        print("\(path): not a symbol graph"); exit(2)
    }
    // members whose documentation comes from elsewhere (a protocol requirement, the standard library)
    var inherited = Set<String>()
    for r in relationships where r["sourceOrigin"] != nil { if let s = r["source"] as? String { inherited.insert(s) } }
    for s in symbols {
        guard let id = (s["identifier"] as? [String: Any])?["precise"] as? String,
              let access = s["accessLevel"] as? String, access == "public" || access == "open" else { continue }
        if id.contains("::SYNTHESIZED::") { continue }
        total += 1
        if s["docComment"] != nil || inherited.contains(id) { continue }
        let name = (s["pathComponents"] as? [String] ?? []).joined(separator: ".")
        let loc = s["location"] as? [String: Any]
        let file = (loc?["uri"] as? String).map { URL(string: $0)?.path ?? $0 } ?? "?"
        let line = ((loc?["position"] as? [String: Any])?["line"] as? Int).map { $0 + 1 } ?? 0
        let cwd = FileManager.default.currentDirectoryPath + "/"
        missing.append("\(file.hasPrefix(cwd) ? String(file.dropFirst(cwd.count)) : file):\(line): \(name)")
    }
}
for m in missing.sorted() { print("missing doc comment: \(m)") }
print("documentation coverage: \(total - missing.count) of \(total) public symbols documented")
exit(missing.isEmpty ? 0 : 1)
