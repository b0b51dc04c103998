fn main() {
    println!("podc");
}
