package load

// Vocabulary for generated data. Weights skew the draws: most customers are
// bronze and in North America or Europe, a few categories sell most.

type weighted[T any] struct {
	v T
	w float64
}

var segmentWeights = []weighted[string]{{"bronze", 60}, {"silver", 25}, {"gold", 12}, {"platinum", 3}}

type country struct {
	code   string
	dial   int
	cities []weighted[string]
}

type region struct {
	name         string
	deliveryDays float64 // typical shipping-to-delivery time
	countries    []weighted[country]
}

var regions = []weighted[region]{
	{region{"north_america", 2.5, []weighted[country]{
		{country{"US", 1, []weighted[string]{{"New York", 20}, {"Los Angeles", 14}, {"Chicago", 10}, {"Houston", 8}, {"Seattle", 6}, {"Austin", 5}, {"Denver", 4}, {"Boston", 5}}}, 80},
		{country{"CA", 1, []weighted[string]{{"Toronto", 10}, {"Vancouver", 6}, {"Montreal", 6}, {"Calgary", 3}}}, 15},
		{country{"MX", 52, []weighted[string]{{"Mexico City", 10}, {"Guadalajara", 4}, {"Monterrey", 4}}}, 5},
	}}, 40},
	{region{"europe", 3, []weighted[country]{
		{country{"DE", 49, []weighted[string]{{"Berlin", 10}, {"Hamburg", 6}, {"Munich", 6}, {"Cologne", 4}}}, 25},
		{country{"GB", 44, []weighted[string]{{"London", 15}, {"Manchester", 5}, {"Birmingham", 4}, {"Leeds", 3}}}, 22},
		{country{"FR", 33, []weighted[string]{{"Paris", 12}, {"Lyon", 4}, {"Marseille", 4}, {"Toulouse", 3}}}, 18},
		{country{"ES", 34, []weighted[string]{{"Madrid", 8}, {"Barcelona", 7}, {"Valencia", 3}}}, 10},
		{country{"IT", 39, []weighted[string]{{"Rome", 7}, {"Milan", 8}, {"Naples", 3}}}, 10},
		{country{"NL", 31, []weighted[string]{{"Amsterdam", 6}, {"Rotterdam", 3}, {"Utrecht", 2}}}, 8},
		{country{"PL", 48, []weighted[string]{{"Warsaw", 6}, {"Krakow", 3}, {"Wroclaw", 2}}}, 7},
	}}, 30},
	{region{"asia_pacific", 4, []weighted[country]{
		{country{"JP", 81, []weighted[string]{{"Tokyo", 15}, {"Osaka", 6}, {"Nagoya", 3}}}, 30},
		{country{"AU", 61, []weighted[string]{{"Sydney", 8}, {"Melbourne", 7}, {"Brisbane", 3}}}, 20},
		{country{"IN", 91, []weighted[string]{{"Mumbai", 8}, {"Bangalore", 7}, {"Delhi", 8}}}, 20},
		{country{"SG", 65, []weighted[string]{{"Singapore", 1}}}, 10},
		{country{"KR", 82, []weighted[string]{{"Seoul", 8}, {"Busan", 3}}}, 20},
	}}, 18},
	{region{"latin_america", 6, []weighted[country]{
		{country{"BR", 55, []weighted[string]{{"Sao Paulo", 10}, {"Rio de Janeiro", 6}, {"Brasilia", 2}}}, 50},
		{country{"AR", 54, []weighted[string]{{"Buenos Aires", 8}, {"Cordoba", 2}}}, 25},
		{country{"CL", 56, []weighted[string]{{"Santiago", 6}, {"Valparaiso", 1}}}, 25},
	}}, 8},
	{region{"middle_east_africa", 7, []weighted[country]{
		{country{"AE", 971, []weighted[string]{{"Dubai", 6}, {"Abu Dhabi", 3}}}, 35},
		{country{"ZA", 27, []weighted[string]{{"Johannesburg", 5}, {"Cape Town", 4}}}, 35},
		{country{"NG", 234, []weighted[string]{{"Lagos", 6}, {"Abuja", 2}}}, 30},
	}}, 4},
}

var firstNames = []string{"Ava", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofia", "Lucas", "Mia", "Leon", "Yuki", "Hiro", "Aarav", "Priya", "Chen", "Mei",
	"Fatima", "Omar", "Amara", "Kwame", "Ines", "Diego", "Camila", "Jakub", "Zofia", "Lars", "Freya", "Elena", "Marco", "Giulia", "Pierre", "Chloe",
	"Hannah", "Jonas", "Sara", "David", "Anna", "Ali", "Lina", "Tom"}

var lastNames = []string{"Smith", "Garcia", "Muller", "Rossi", "Dubois", "Kowalski", "Tanaka", "Kim", "Patel", "Singh", "Wang", "Li", "Silva", "Santos",
	"Okafor", "Mensah", "Hassan", "Novak", "Jansen", "Berg", "Lopez", "Martin", "Brown", "Wilson", "Schmidt", "Fischer", "Sato", "Nguyen", "Cohen", "Ivanova"}

type category struct {
	name      string
	prefix    string
	basePrice float64 // median price in USD
	nouns     []string
}

var categories = []weighted[category]{
	{category{"electronics", "ELE", 120, []string{"Headphones", "Speaker", "Charger", "Keyboard", "Mouse", "Monitor", "Webcam", "Tablet"}}, 18},
	{category{"apparel", "APP", 35, []string{"T-Shirt", "Hoodie", "Jacket", "Jeans", "Sneakers", "Cap", "Scarf", "Socks"}}, 20},
	{category{"home", "HOM", 45, []string{"Lamp", "Pillow", "Blanket", "Vase", "Rug", "Clock", "Mirror", "Shelf"}}, 14},
	{category{"kitchen", "KIT", 30, []string{"Pan", "Knife", "Mug", "Kettle", "Blender", "Cutting Board", "Teapot", "Grinder"}}, 12},
	{category{"beauty", "BEA", 22, []string{"Serum", "Cream", "Shampoo", "Perfume", "Lip Balm", "Mask", "Cleanser"}}, 10},
	{category{"sports", "SPO", 50, []string{"Yoga Mat", "Dumbbell", "Water Bottle", "Racket", "Ball", "Bike Light", "Helmet"}}, 9},
	{category{"books", "BOO", 15, []string{"Novel", "Cookbook", "Atlas", "Biography", "Guide", "Anthology"}}, 8},
	{category{"toys", "TOY", 25, []string{"Puzzle", "Robot", "Plush", "Blocks", "Board Game", "Kite"}}, 5},
	{category{"grocery", "GRO", 8, []string{"Coffee", "Tea", "Chocolate", "Olive Oil", "Honey", "Granola"}}, 4},
}

var adjectives = []string{"Classic", "Pro", "Eco", "Smart", "Mini", "Ultra", "Organic", "Deluxe", "Essential", "Urban", "Nordic", "Vintage", "Compact", "Premium"}

var campaignThemes = []string{"NEWYEAR", "WINTER", "VALENTINE", "SPRING", "EASTER", "MOTHERSDAY", "SUMMER", "BACK2SCHOOL", "AUTUMN", "HALLOWEEN", "BLACKFRIDAY", "CYBERMONDAY", "XMAS", "FLASH"}
