//! `.tar.gz` archives as `data fetch` unpacks them (`fetch::unpack`): nothing may land outside
//! the folder it unpacks to (checked here: a path that escapes is a crash).

use visionnet::data::fetch;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let out = visionnet_fuzz::scratch().join("unpacked");
        let _ = std::fs::remove_dir_all(&out);
        if std::fs::create_dir_all(&out).is_err() {
            return;
        }
        if let Some(archive) = visionnet_fuzz::stage("archive.tar.gz", data)
            && let Ok(files) = fetch::unpack(&archive, &out)
        {
            for file in files {
                assert!(
                    file.starts_with(&out),
                    "{} escaped the folder",
                    file.display()
                );
            }
        }
    });
}
