//! `GET /sale/{product}/button.js`: the one dynamic script of the sale page, polled by the crowd
//! (cacheable for one second). Before the start it says `active:false` with the start time and
//! the server's clock, so the page counts down to server time; from the start it reveals the
//! buy path. The script stores the state in `window.flashgate[product]` and fires a
//! `flashgate:sale` event with it.

use crate::admission::sale::SaleGate;
use crate::config::Captcha;

/// Render the script for `gate` at `now_ms`.
pub fn render(gate: &SaleGate, now_ms: u64) -> String {
    let open = gate.window(now_ms).is_ok();
    let ended = now_ms >= gate.ends_ms();
    let captcha = match gate.captcha() {
        Captcha::None => "none",
        Captcha::Pow => "pow",
        Captcha::Token => "token",
    };
    let buy_path = if open {
        format!(",\"buy_path\":\"{}\"", gate.buy_path())
    } else {
        String::new()
    };
    let state = format!(
        "{{\"product\":{},\"active\":{open},\"ended\":{ended},\"starts_at\":\"{}\",\
         \"starts_at_ms\":{},\"ends_at_ms\":{},\"server_time_ms\":{now_ms},\"captcha\":\"{captcha}\"{buy_path}}}",
        gate.product,
        gate.sale.starts_at,
        gate.starts_ms(),
        gate.ends_ms(),
    );
    format!(
        "/* flashgate sale state, refreshed every second */\n\
         (function (s) {{\n  var w = window;\n  w.flashgate = w.flashgate || {{}};\n  \
         w.flashgate[s.product] = s;\n  if (typeof CustomEvent === \"function\") {{\n    \
         w.dispatchEvent(new CustomEvent(\"flashgate:sale\", {{ detail: s }}));\n  }}\n}})({state});\n"
    )
}

/// The JSON state embedded in a rendered script (for tests and tools).
pub fn state_of(script: &str) -> Option<&str> {
    let start = script.rfind("})(")? + 3;
    let end = script.rfind(");")?;
    script.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Sale, Timestamp};
    use crate::ground::Secret;
    use std::time::{Duration, UNIX_EPOCH};

    fn gate() -> SaleGate {
        let sale = Sale {
            product: 7,
            stock: 1,
            starts_at: Timestamp(UNIX_EPOCH + Duration::from_secs(1000)),
            ends_at: Timestamp(UNIX_EPOCH + Duration::from_secs(2000)),
            captcha: Captcha::None,
            showcase: Default::default(),
            queue: None,
        };
        SaleGate::new(&sale, &Secret::new(vec![1u8; 32]), Duration::from_secs(1))
    }

    #[test]
    fn hides_the_path_until_the_start() {
        let g = gate();
        let before: serde_json::Value =
            serde_json::from_str(state_of(&render(&g, 999_000)).unwrap()).unwrap();
        assert_eq!(before["active"], false);
        assert_eq!(before["server_time_ms"], 999_000);
        assert_eq!(before["starts_at_ms"], 1_000_000);
        assert!(before.get("buy_path").is_none());
        let during: serde_json::Value =
            serde_json::from_str(state_of(&render(&g, 1_000_000)).unwrap()).unwrap();
        assert_eq!(during["active"], true);
        assert_eq!(during["buy_path"], g.buy_path());
        let after: serde_json::Value =
            serde_json::from_str(state_of(&render(&g, 2_000_000)).unwrap()).unwrap();
        assert_eq!(
            (after["active"].clone(), after["ended"].clone()),
            (false.into(), true.into())
        );
    }
}
