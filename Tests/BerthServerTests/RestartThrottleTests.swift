import Testing

@testable import BerthServer

/// A crash loop stops being restarted; a quiet minute lets restarts happen again.
@Suite struct RestartThrottleTests {
    @Test func fiveRestartsAMinuteThenNoMore() {
        var throttle = RestartThrottle()
        let start = ContinuousClock.now
        var answers: [Bool] = []
        for second in 0..<RestartThrottle.limit { answers.append(throttle.allow(now: start + .seconds(second))) }
        #expect(answers == Array(repeating: true, count: RestartThrottle.limit))
        let tenSeconds = throttle.allow(now: start + .seconds(10))
        let almostAMinute = throttle.allow(now: start + .seconds(59))
        #expect(!tenSeconds && !almostAMinute)
        // Sixty seconds after the first restart, one slot is free again.
        let afterAMinute = throttle.allow(now: start + .seconds(60) + .milliseconds(1))
        let rightAfter = throttle.allow(now: start + .seconds(60) + .milliseconds(2))
        #expect(afterAMinute && !rightAfter)
    }
}
