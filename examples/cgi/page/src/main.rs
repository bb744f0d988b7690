//! A CGI program, as WAGI and Spin's `wagi` executor run them: it knows
//! nothing of Atoll. The request is in its environment and on stdin; the
//! response goes to stdout, a header block first.
//!
//! - `GET /cgi/<anything>`: a greeting (the `greeting` variable) that shows
//!   what CGI told the program;
//! - `GET /cgi/about`: `static/about.txt`, read from the read-only
//!   `static/` the `files` grant gives it;
//! - `GET /cgi/old`: a redirect (`Location` alone means 302);
//! - `POST /sign` (after the `tidy` step): thanks whoever signed, the
//!   tidied name arriving on stdin.

use std::io::Read;

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let greeting = std::env::var("greeting").unwrap_or_else(|_| "Hello".into());
    if var("REQUEST_METHOD") == "POST" {
        let mut name = String::new();
        std::io::stdin().read_to_string(&mut name).expect("stdin");
        eprintln!("signed by {name}");
        print!("Content-Type: text/plain\n\n{greeting}, {name}! Thanks for signing.\n");
        return;
    }
    match var("PATH_INFO").as_str() {
        "/about" => match std::fs::read_to_string("static/about.txt") {
            Ok(text) => print!("Content-Type: text/plain\n\n{text}"),
            Err(e) => print!("Status: 404 Not Found\nContent-Type: text/plain\n\nno about page: {e}\n"),
        },
        "/old" => print!("Location: /cgi/new\n\n"),
        path => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            print!(
                "Content-Type: text/plain\nX-Served-By: cgi\n\n{greeting} from a CGI program!\nSCRIPT_NAME={}\nPATH_INFO={path}\nX_MATCHED_ROUTE={}\narguments={}\n",
                var("SCRIPT_NAME"),
                var("X_MATCHED_ROUTE"),
                args.join(" ")
            );
        }
    }
}
