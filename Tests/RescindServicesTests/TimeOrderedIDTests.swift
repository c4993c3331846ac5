import Foundation
import RescindStorage
import Testing

@Suite struct TimeOrderedIDTests {
    @Test func anIdIsVersion7AndCarriesItsMillisecond() {
        let date = Date(timeIntervalSince1970: 1_767_225_600.123)
        let id = UUID.timeOrdered(at: date)
        let text = id.uuidString
        // 1_767_225_600_123 ms = 0x019B_76DA_A87B
        #expect(text.hasPrefix("019B76DA-A87B-7"))
        #expect("89AB".contains(text[text.index(text.startIndex, offsetBy: 19)]))
        #expect(UUID.timeOrdered(at: date) != id)
    }

    @Test func theTextOfLaterIdsSortsAfter() {
        let start = Date(timeIntervalSince1970: 1_767_225_600)
        // One id every 10 ms: each sorts after the one made before it.
        let ids = (0..<1_000).map { UUID.timeOrdered(at: start.addingTimeInterval(Double($0) / 100)).uuidString }
        for (earlier, later) in zip(ids, ids.dropFirst()) {
            #expect(earlier < later)
        }
        #expect(Set(ids).count == ids.count)
    }
}
